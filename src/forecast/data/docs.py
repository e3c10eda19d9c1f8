"""Render the canonical data model as Markdown (``docs/data-model.md`` is generated from it)."""

from __future__ import annotations

from forecast.data.pipeline import DEFAULT_PIPELINE
from forecast.data.schema import TABLES
from forecast.data.validate import RULES


def data_model_markdown() -> str:
    """The canonical tables, their columns and rules, and the validation rules, as Markdown."""
    lines = [
        "# Canonical data model",
        "",
        "Generated from `src/forecast/data/schema.py` by `python -m forecast.data.docs`; a test keeps it in",
        "sync. Timestamps are UTC (stored without a time zone). Extra columns of any table are kept as",
        "custom fields.",
        "",
    ]
    for spec in TABLES.values():
        lines += [f"## `{spec.name}`", "", spec.description, "", f"Primary key: `{', '.join(spec.key)}`.", ""]
        if spec.foreign_keys:
            refs = ", ".join(f"`{fk.column}` → `{fk.table}`" for fk in spec.foreign_keys)
            lines += [f"References: {refs}.", ""]
        if spec.orders:
            orders = ", ".join(f"`{o.later}` ≥ `{o.earlier}`" for o in spec.orders)
            lines += [f"Order (checked by day): {orders}.", ""]
        lines += [
            "| column | type | required in file | may be empty | allowed / rule |",
            "|---|---|---|---|---|",
        ]
        for c in spec.columns:
            rule = ""
            if c.allowed:
                rule = ", ".join(c.allowed)
            elif c.name in spec.stage_columns:
                rule = "a stage of the pipeline"
            if c.min_value is not None:
                rule = f"≥ {c.min_value:g}"
            if c.kind == "timestamp":
                rule = (rule + "; " if rule else "") + (
                    "may be in the future" if c.future_ok else "not after as-of"
                )
            lines.append(
                f"| `{c.name}` | {c.kind} | {'yes' if c.required else 'no'} | "
                f"{'yes' if c.nullable else 'no'} | {rule} |"
            )
        lines.append("")
    lines += [
        "## Default pipeline",
        "",
        " → ".join(DEFAULT_PIPELINE.open_stages)
        + f" → {' / '.join(DEFAULT_PIPELINE.won_stages + DEFAULT_PIPELINE.lost_stages)} (closed)",
        "",
        "## Validation rules",
        "",
        "| rule | meaning |",
        "|---|---|",
    ]
    lines += [f"| `{rule}` | {meaning} |" for rule, meaning in RULES.items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(data_model_markdown(), end="")
