"""Intake's read model: the petitions, deadlines, timelines, 督办 and zero-report verdicts that
``GET`` answers from, built from the lifecycle events (:mod:`~.consumer` consumes them,
:mod:`~.handlers` records each, :mod:`~.store` holds the statements)."""
