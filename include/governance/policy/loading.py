"""Reading a policy file: YAML to the validated model, with every problem reported at once as a
line naming the file, the rule (or category) and the field, in words a person can act on.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from governance.errors import PolicyError
from governance.policy.base import DEFAULT_POLICY_PATH
from governance.policy.model import Policy

# Lists whose items are named by their ``id`` in messages: "rule 'order-records' (rules[3])".
_NAMED_ITEMS = {
    "rules": "rule",
    "categories": "category",
    "recipients": "recipient",
    "purposes": "purpose",
    "audiences": "audience",
}


def load_policy(path: Path | str | None = None) -> Policy:
    """Load and validate a policy file (default: the photo shop's)."""
    path = Path(path) if path else DEFAULT_POLICY_PATH
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PolicyError(path, [f"cannot read the file: {exc.strerror}"]) from None
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise PolicyError(path, [f"not valid YAML: {exc}"]) from None
    return parse_policy(data, path, raw)


def parse_policy(data: Any, path: Path | str = "<policy>", raw: bytes | None = None) -> Policy:
    """Validate already-parsed YAML; raises PolicyError naming the file, the rule and the field."""
    if not isinstance(data, dict):
        raise PolicyError(path, [f"the policy must be a mapping at the top level, got {type(data).__name__}"])
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(path, _problems(data, exc)) from None
    version = hashlib.sha256(raw if raw is not None else yaml.safe_dump(data, sort_keys=True).encode()).hexdigest()
    return policy.model_copy(update={"source_path": str(path), "version": version})


def _problems(data: dict[str, Any], exc: ValidationError) -> list[str]:
    problems: list[str] = []
    for error in exc.errors(include_url=False):
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key; remove it or check its spelling"
        elif error["type"] == "missing":
            message = "required field is missing"
        where = format_location(data, tuple(error["loc"]))
        problems += [f"{where}: {line}" if where else line for line in message.split("\n")]
    return problems


def format_location(data: dict[str, Any], loc: tuple[Any, ...]) -> str:
    """Turn a pydantic location like ('rules', 3, 'window') into "rule 'order-records' (rules[3]),
    field 'window'"."""
    heads: list[str] = []
    fields: list[str] = []
    i = 0
    while i < len(loc):
        key = loc[i]
        # Only the policy's top-level lists are named: a recipient's own 'categories' is a field.
        if i == 0 and key in _NAMED_ITEMS and i + 1 < len(loc) and isinstance(loc[i + 1], int):
            heads.append(_named_item(data, key, loc[i + 1]))
            i += 2
            continue
        fields.append(f"[{key}]" if isinstance(key, int) else str(key))
        i += 1
    text = ", ".join(heads)
    if fields:
        text += (", " if text else "") + "field '" + ".".join(fields).replace(".[", "[") + "'"
    return text


def _named_item(data: dict[str, Any], key: str, index: int) -> str:
    try:
        item_id = data[key][index].get("id")
    except (KeyError, IndexError, TypeError, AttributeError):
        item_id = None
    return f"{_NAMED_ITEMS[key]} {item_id!r} ({key}[{index}])" if item_id else f"{key}[{index}]"
