"""Read a YAML file into a pydantic model, with errors that name the file and the field."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)


def read_yaml_model(model: type[M], path: Path, what: str) -> M:
    """Parse ``path`` as ``model``.

    Args:
        model: The pydantic model class.
        path: The YAML file.
        what: What the file is, for messages ("config", "flags config", "monitoring policy").

    Raises:
        ValueError: With the file name and pydantic's field paths.
    """
    try:
        with path.open(encoding="utf-8") as fh:
            data = yaml.safe_load(fh) or {}
        return model.model_validate(data)
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the {what} ({exc})") from exc
    except (yaml.YAMLError, ValueError) as exc:
        raise ValueError(f"{path}: invalid {what}: {exc}") from exc
