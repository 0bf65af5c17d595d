"""JSON Schemas of GeoReport v2's JSON answers, written from the specification's field tables
(http://wiki.open311.org/GeoReport_v2): which fields each answer has, which are required and
what type and values each takes. The tests check the facade's JSON against them with
``jsonschema``; the XML answers are parsed with the standard library's parser (expat) and
checked for the same fields."""

from __future__ import annotations

from typing import Any

#: a W3C date-time with a zone (the spec's "W3C format")
W3C = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$"
_NULLABLE_TEXT: dict[str, Any] = {"type": ["string", "null"]}
_NULLABLE_TIME: dict[str, Any] = {"anyOf": [{"type": "null"}, {"type": "string", "pattern": W3C}]}

ERRORS: dict[str, Any] = {
    "type": "array", "minItems": 1,
    "items": {"type": "object", "required": ["code", "description"], "additionalProperties": False,
              "properties": {"code": {"type": "integer"}, "description": {"type": "string", "minLength": 1}}},
}

DISCOVERY: dict[str, Any] = {
    "type": "object", "required": ["changeset", "contact", "key_service", "endpoints"],
    "properties": {
        "changeset": {"type": "string", "pattern": W3C}, "contact": {"type": "string"},
        "key_service": {"type": "string"},
        "endpoints": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["specification", "url", "changeset", "type", "formats"],
            "properties": {"specification": {"type": "string"}, "url": {"type": "string"},
                           "changeset": {"type": "string"}, "type": {"enum": ["production", "test"]},
                           "formats": {"type": "array", "items": {"enum": ["text/xml", "application/json"]}}}}},
    },
}

SERVICES: dict[str, Any] = {
    "type": "array", "minItems": 1,
    "items": {"type": "object", "required": ["service_code", "service_name", "metadata", "type"],
              "additionalProperties": False,
              "properties": {"service_code": {"type": "string", "minLength": 1},
                             "service_name": {"type": "string", "minLength": 1},
                             "description": {"type": "string"}, "metadata": {"type": "boolean"},
                             "type": {"enum": ["realtime", "batch", "blackbox"]},
                             "keywords": {"type": "string"}, "group": {"type": "string"}}},
}

SERVICE_DEFINITION: dict[str, Any] = {
    "type": "object", "required": ["service_code", "attributes"],
    "properties": {
        "service_code": {"type": "string"},
        "attributes": {"type": "array", "items": {
            "type": "object",
            "required": ["variable", "code", "datatype", "required", "order", "description"],
            "properties": {
                "variable": {"type": "boolean"}, "code": {"type": "string"},
                "datatype": {"enum": ["string", "number", "datetime", "text", "singlevaluelist", "multivaluelist"]},
                "required": {"type": "boolean"}, "datatype_description": {"type": ["string", "null"]},
                "order": {"type": "integer", "minimum": 1}, "description": {"type": "string"},
                "values": {"type": "array", "items": {"type": "object", "required": ["key", "name"],
                                                      "properties": {"key": {"type": "string"},
                                                                     "name": {"type": "string"}}}},
            }}},
    },
}

POSTED: dict[str, Any] = {
    "type": "array", "minItems": 1, "maxItems": 1,
    "items": {"type": "object", "anyOf": [{"required": ["service_request_id"]}, {"required": ["token"]}],
              "properties": {"service_request_id": {"type": "string"}, "token": {"type": "string"},
                             "service_notice": _NULLABLE_TEXT, "account_id": _NULLABLE_TEXT}},
}

TOKENS: dict[str, Any] = {
    "type": "array",
    "items": {"type": "object", "required": ["service_request_id", "token"],
              "properties": {"service_request_id": {"type": "string"}, "token": {"type": "string"}}},
}

REQUESTS: dict[str, Any] = {
    "type": "array",
    "items": {
        "type": "object", "required": ["service_request_id", "status", "service_code", "requested_datetime"],
        "additionalProperties": False,
        "properties": {
            "service_request_id": {"type": "string"}, "status": {"enum": ["open", "closed"]},
            "status_notes": _NULLABLE_TEXT, "service_name": _NULLABLE_TEXT, "service_code": _NULLABLE_TEXT,
            "description": _NULLABLE_TEXT, "agency_responsible": _NULLABLE_TEXT, "service_notice": _NULLABLE_TEXT,
            "requested_datetime": {"type": "string", "pattern": W3C}, "updated_datetime": _NULLABLE_TIME,
            "expected_datetime": _NULLABLE_TIME, "address": _NULLABLE_TEXT, "address_id": _NULLABLE_TEXT,
            "zipcode": _NULLABLE_TEXT, "lat": {"type": ["number", "null"]}, "long": {"type": ["number", "null"]},
            "media_url": _NULLABLE_TEXT,
        },
    },
}
