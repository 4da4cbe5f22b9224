"""Masking strategies: one small class per way of overwriting a personal column (RET-8
anonymisation), looked up by its ``strategy`` name; an unknown name lists the valid ones.
"""

from __future__ import annotations

from typing import Any, ClassVar

from governance.policy.base import StrictModel


class MaskingStrategy(StrictModel):
    """One way to overwrite a personal column; looked up by ``strategy`` name (fides style)."""

    name: ClassVar[str]
    registry: ClassVar[dict[str, type[MaskingStrategy]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        MaskingStrategy.registry[cls.name] = cls

    def sql_value(self) -> tuple[str, list[Any]]:
        """An SQL value expression (with %s placeholders) and its parameters."""
        raise NotImplementedError


class SetNull(MaskingStrategy):
    name: ClassVar[str] = "set_null"

    def sql_value(self) -> tuple[str, list[Any]]:
        return "NULL", []


class FixedValue(MaskingStrategy):
    """A constant, the same for every record: anonymous, unlike a hash of the original."""

    name: ClassVar[str] = "fixed_value"
    value: str | int | float | bool

    def sql_value(self) -> tuple[str, list[Any]]:
        return "%s", [self.value]


def build_strategy(config: Any) -> MaskingStrategy:
    """The strategy a column's ``{strategy: NAME, ...options}`` mapping names."""
    if isinstance(config, MaskingStrategy):
        return config
    if not isinstance(config, dict) or "strategy" not in config:
        raise ValueError("each column needs a mapping with 'strategy', e.g. {strategy: set_null}")
    options = dict(config)
    name = options.pop("strategy")
    strategy = MaskingStrategy.registry.get(name)
    if strategy is None:
        valid = ", ".join(sorted(MaskingStrategy.registry))
        raise ValueError(f"unknown strategy {name!r}; valid strategies: {valid}")
    return strategy(**options)
