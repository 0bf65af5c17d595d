"""Settings read from the environment (``PETITION_*``), built when a service starts.

Defaults are the local stack of ``make up``: everything on 127.0.0.1, no secrets. The
secrets, the HMAC key that pseudonymises petitioners and the broker credentials, have no
default in production use; the local stack generates them into the run folder.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Every knob of the platform, one environment variable each (prefix ``PETITION_``)."""

    model_config = SettingsConfigDict(env_prefix="PETITION_", extra="ignore", frozen=True)

    kafka_bootstrap: str = "127.0.0.1:9092"
    # the brokers of the cluster (the local stack's PETITION_KAFKA_BROKERS): the topics the
    # platform creates (petitionctl topics ensure, the router's department queues) get
    # min(brokers, 3) replicas and, with 3, min.insync.replicas=2 (shared.kafka_replication)
    kafka_brokers: int = Field(default=1, ge=1)
    # the broker's SASL/SCRAM-SHA-512 principal (empty: a broker that authenticates nobody) and
    # its password, given itself or in a file (shared.kafka_client.KafkaAccess.from_settings)
    kafka_username: str = ""
    kafka_password: SecretStr = Field(default=SecretStr(""))
    kafka_password_file: Path | None = None
    # the principals' password files (petitionctl's admin and department commands); default
    # <run_dir>/secrets/kafka, where the local stack keeps them
    kafka_secrets_dir: Path | None = None
    pg_dsn: str = "postgresql://petition@127.0.0.1:5432/petition"
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    router_port: int = 8081
    # where intake reaches the router (the operator desk's suggestions); empty: 127.0.0.1 on router_port
    router_url: str = ""
    escalation_port: int = 8082
    watch_port: int = 8084
    # intake as several worker processes (the local stack's PETITION_INTAKE_WORKERS): this
    # worker's number (0: intake runs alone, on http_port as it always did). A worker serves
    # the API on http_port together with the others (SO_REUSEPORT) and alone on
    # intake_worker_port, its private port (its own /readyz and /metrics); worker 1 alone runs
    # the consumer-lag collector (services/intake/workers.py)
    intake_worker: int = Field(default=0, ge=0, le=9)
    intake_worker_port: int = 8083
    run_dir: Path = REPO_ROOT / ".run"
    hmac_key: SecretStr = Field(default=SecretStr(""))
    max_body_bytes: int = 256 * 1024
    # flood control (intake): a token bucket per caller (its verified token's subject, else
    # its address) refilled at this rate, holding `burst`; a rate of 0 turns it off
    rate_limit_per_second: float = Field(default=50.0, ge=0)
    rate_limit_burst: int = Field(default=200, ge=1)
    # the most callers (and verified tokens) remembered at once, least recently seen out first
    rate_limit_max_callers: int = Field(default=10_000, ge=1)
    # a petition's `received_at` must lie in [received_at_earliest, now + max_future_seconds]
    # the console (people's sign-in): cookies marked Secure when it is served over HTTPS; the
    # wrong passwords in a row that lock an account, for how long; how long a session lasts
    console_secure_cookies: bool = False
    console_max_failed_logins: int = Field(default=5, ge=1)
    console_lockout_minutes: float = Field(default=15.0, gt=0)
    console_session_hours: float = Field(default=12.0, gt=0)
    # Open311 GeoReport v2 (intake): each client's token bucket (requests a second, burst; a
    # rate of 0 turns it off) and the service list (default: services/intake/data/open311.yaml)
    open311_rate_per_second: float = Field(default=5.0, ge=0)
    open311_burst: int = Field(default=50, ge=1)
    open311_services_path: Path | None = None
    # the e-mail channel (intake): an SMTP listener on mail_host:mail_port (0: none) for the
    # centre's mail relay to forward into; mail to `mail_address` becomes a petition by
    # `mail_channel` (letter or online); messages over `mail_max_bytes` are refused; automatic
    # replies go through `mail_relay` (host:port) or, without one, into the Maildir `mail_outbox`
    # (default <run_dir>/mail/outbox)
    mail_host: str = "127.0.0.1"
    mail_port: int = Field(default=0, ge=0, le=65535)
    mail_address: str = "12345@petition.example.gov.cn"
    mail_channel: str = Field(default="letter", pattern="^(letter|online)$")
    mail_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    mail_relay: str = ""
    mail_outbox: Path | None = None
    # closing the loop: follow-ups, reopenings and the 三率's weights (default:
    # services/intake/data/loop.yaml)
    loop_policy_path: Path | None = None
    received_at_earliest: datetime = datetime.fromisoformat("2000-01-01T00:00:00+08:00")
    received_at_max_future_seconds: float = Field(default=300.0, ge=0)
    # a client waits: the HTTP routes' bound on each database statement and connection
    db_timeout_seconds: float = Field(default=2.0, gt=0)
    # ... and on a whole request (several statements); past it the answer is 503
    request_timeout_seconds: float = Field(default=2.5, ge=0)
    batch_size: int = 500
    batch_within_seconds: float = 0.05
    # consumed records over this (key + value + headers) are dead-lettered as "oversized"
    max_record_bytes: int = Field(default=1024 * 1024, gt=0)
    # static consumer-group membership: this instance's stable id in each group it joins
    # (default: service, host and port: shared.consumer.group_instance_id); a restarted
    # instance takes its partitions back at once instead of waiting for a rebalance
    instance_id: str = ""
    # how long the broker keeps a silent member's partitions (a static member that is gone
    # for good holds them this long); heartbeats go every tenth of it
    consumer_session_timeout_seconds: float = Field(default=20.0, ge=6.0, le=90.0)
    timer_poll_seconds: float = 0.2
    timer_batch_size: int = 1000
    log_level: str = "INFO"
    triage_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    routing_table_path: Path | None = None
    gazetteer_path: Path | None = None
    # the watch service (early warning): its policies (default services/watch/data/watch.yaml)
    # and how often it closes subsided surges and quiet incidents
    watch_policy_path: Path | None = None
    watch_tick_seconds: float = 10.0
    classifier: str = "model"  # "model" (the trained artefact) or "keywords"
    # the serving folder of a promoted model (petitionctl model promote writes it, the router
    # watches it and reloads); while it holds no model, the artefact shipped in the package
    model_dir: Path | None = None
    # worker processes that classify beside the router's event loop (0: in the loop itself)
    classify_workers: int = Field(default=1, ge=0, le=16)
    # the router's outbox relay in a child process (false: a task of its event loop)
    relay_process: bool = True
    table_reload_seconds: float = 2.0
    data_dir: Path = REPO_ROOT.parent / "shared" / "data"

    @property
    def serving_model_dir(self) -> Path:
        """Where a promoted classifier is served from (`model_dir`, default <run_dir>/model)."""
        return self.model_dir or self.run_dir / "model"


def load_settings() -> Settings:
    """Build settings from the environment; call once in a composition root."""
    return Settings()
