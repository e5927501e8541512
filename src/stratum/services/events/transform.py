"""What a target receives: the event itself, ``Input`` (constant JSON), ``InputPath`` (a part of
the event) or ``InputTransformer`` (InputPathsMap + InputTemplate), rendered as EventBridge does.

In a template that is a JSON object, a placeholder outside quotes becomes the value as JSON
(a string keeps its quotes); inside a JSON string it becomes the value's text (a string without
quotes, escaped for the string it lands in). A template that is not a JSON object is text: every
placeholder becomes the value's text. Predefined variables: ``aws.events.rule-arn``,
``aws.events.rule-name``, ``aws.events.event.ingestion-time``, ``aws.events.event`` (the event
without ``detail``) and ``aws.events.event.json`` (the whole event).
"""

from __future__ import annotations

import json
import re
from typing import Any

_PATH = re.compile(r"^\$(?:\.(?:[A-Za-z0-9_\-/:@]+|\*)(?:\[(?:\d+|\*)\])*|\[(?:\d+|\*)\])*$")
_SEGMENT = re.compile(r"\.([^.\[]+)|\[(\d+|\*)\]")
_PLACEHOLDER = re.compile(r"<([A-Za-z0-9_.\-]+)>")
_KEY = re.compile(r"^[A-Za-z0-9_\-]+$")
RESERVED = ("aws.events.rule-arn", "aws.events.rule-name", "aws.events.event.ingestion-time",
            "aws.events.event", "aws.events.event.json")
MAX_PATHS = 100


class InputError(ValueError):
    """A target's input settings are not valid; the message is EventBridge's."""


def valid_path(path: str) -> bool:
    return bool(_PATH.match(path))


def select(document: Any, path: str) -> Any:
    """The value at a JSON path ($.a.b[0], * for every member); None when it is not there."""
    values = [document]
    wildcard = False
    for name, index in _SEGMENT.findall(path[1:]):
        nxt: list[Any] = []
        for value in values:
            if name == "*" or index == "*":
                wildcard = True
                if isinstance(value, dict):
                    nxt.extend(value.values())
                elif isinstance(value, list):
                    nxt.extend(value)
            elif name:
                if isinstance(value, dict) and name in value:
                    nxt.append(value[name])
            elif isinstance(value, list) and int(index) < len(value):
                nxt.append(value[int(index)])
        values = nxt
    if wildcard:
        return values
    return values[0] if values else None


def check(target: dict[str, Any]) -> None:
    """PutTargets' checks of Input, InputPath and InputTransformer."""
    given = [k for k in ("Input", "InputPath", "InputTransformer") if target.get(k) is not None]
    if len(given) > 1:
        raise InputError("Only one of Input, InputPath, or InputTransformer must be provided.")
    if target.get("Input") is not None:
        try:
            json.loads(target["Input"])
        except ValueError:
            raise InputError(f"Input for target {target['Id']} is not valid JSON text.") from None
    if target.get("InputPath") is not None and not valid_path(target["InputPath"]):
        raise InputError(f"InputPath for target {target['Id']} is invalid.")
    transformer = target.get("InputTransformer")
    if transformer is not None:
        paths = transformer.get("InputPathsMap") or {}
        if len(paths) > MAX_PATHS:
            raise InputError(f"InputPathsMap for target {target['Id']} has more than {MAX_PATHS} entries.")
        for key, path in paths.items():
            if key in RESERVED or key.lower().startswith("aws."):
                raise InputError(f"InputTransformer for target {target['Id']} uses the reserved key {key}.")
            if not _KEY.match(key):
                raise InputError(f"InputPathsMap for target {target['Id']} has an invalid key {key}.")
            if not valid_path(path):
                raise InputError(f"InputTransformer for target {target['Id']} has an invalid JSON path {path}.")
        template = transformer["InputTemplate"]
        if template.lstrip().startswith("{"):
            # A JSON template must be JSON once its placeholders hold values (none may be a key).
            try:
                json.loads(_PLACEHOLDER.sub("null", _quoted_placeholders_blank(template)))
            except ValueError:
                raise InputError(f"InputTemplate for target {target['Id']} is not valid JSON.") from None


def _quoted_placeholders_blank(template: str) -> str:
    out, in_string, escaped = [], False, False
    i = 0
    while i < len(template):
        ch = template[i]
        if in_string:
            m = _PLACEHOLDER.match(template, i) if ch == "<" else None
            if m is not None:
                out.append("x")
                i = m.end()
                continue
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        out.append(ch)
        i += 1
    return "".join(out)


def render(target: dict[str, Any], event: dict[str, Any], *, rule_arn: str, rule_name: str,
           ingestion_time: str) -> str:
    """The text the target receives for ``event``."""
    if target.get("Input") is not None:
        return str(target["Input"])
    if target.get("InputPath") is not None:
        return json.dumps(select(event, target["InputPath"]), separators=(",", ":"))
    transformer = target.get("InputTransformer")
    if transformer is None:
        return json.dumps(event, separators=(",", ":"))
    values: dict[str, Any] = {k: select(event, p) for k, p in (transformer.get("InputPathsMap") or {}).items()}
    values.update({"aws.events.rule-arn": rule_arn, "aws.events.rule-name": rule_name,
                   "aws.events.event.ingestion-time": ingestion_time,
                   "aws.events.event": {k: v for k, v in event.items() if k != "detail"},
                   "aws.events.event.json": event})
    template = transformer["InputTemplate"]
    if template.lstrip().startswith("{"):
        return _render_json(template, values)
    return _PLACEHOLDER.sub(lambda m: _text(values, m), template)


def _text(values: dict[str, Any], m: re.Match[str]) -> str:
    if m.group(1) not in values:
        return m.group(0)  # not a variable: kept as written
    value = values[m.group(1)]
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _render_json(template: str, values: dict[str, Any]) -> str:
    out: list[str] = []
    in_string, escaped = False, False
    i = 0
    while i < len(template):
        ch = template[i]
        m = _PLACEHOLDER.match(template, i) if ch == "<" else None
        if m is not None and m.group(1) in values:
            value = values[m.group(1)]
            if in_string:
                text = _text(values, m)
                # The event JSON variables are inserted as they are (EventBridge does not escape them).
                out.append(text if m.group(1).startswith("aws.events.event") else json.dumps(text)[1:-1])
            else:
                out.append(json.dumps(value, separators=(",", ":")))
            i = m.end()
            continue
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        out.append(ch)
        i += 1
    return "".join(out)
