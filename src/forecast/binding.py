"""Which registered model a command uses, and whether it belongs to the current warehouse.

A warehouse has an identity (:func:`forecast.data.warehouse.warehouse_id`) and a model trained on
it records that identity (``ModelMetadata.warehouse_id``, the ``forecast.warehouse_id`` tag). A
command that reads a warehouse resolves each model it needs from a :class:`ModelRef`:

- by default, the ``champion`` of the model's usual name, which must have been trained on the
  current warehouse: a champion trained on another one, on a flat export, or logged before
  identities existed is refused (:class:`ModelBindingError`, exit 2) with the fix;
- a model named explicitly (``--model NAME``, ``NAME@alias``, ``NAME:version``, ``--close-model``,
  ``--churn-model`` or ``--models role=REF,...``) is used wherever it was trained, with a warning.

One parser (:func:`parse_ref`, :func:`parse_models`), one loader (:func:`load_ref`) and one check
(:func:`check_binding`) serve ``score``, ``revenue``, ``flags``, ``monitor`` and ``serve``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from forecast.config import Settings
from forecast.data.warehouse import warehouse_id
from forecast.errors import InputError
from forecast.logging import get_logger
from forecast.models.metadata import ModelMetadata
from forecast.models.names import cli_name
from forecast.name_rules import check_name
from forecast.registry import CHAMPION, LoadedModel, client, load_model

log = get_logger("binding")

MODELS_OPTION = "--models"
_ALIAS = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class ModelBindingError(InputError):
    """A default model was trained on data other than the current warehouse (exit 2, with the fix)."""


@dataclass(frozen=True)
class ModelRef:
    """A registered model version to use for one role (``deal_win``, ``time_to_close``, ...).

    Attributes:
        role: What the model does for the command (the default model's name).
        name: Registered model name.
        alias: Alias to resolve (``champion`` unless named otherwise).
        version: An exact version (wins over ``alias``).
        option: The option that names this role's model (for messages).
        explicit: Whether the user named it (then it is used even if bound elsewhere).
    """

    role: str
    name: str
    alias: str = CHAMPION
    version: str | None = None
    option: str = "--model"
    explicit: bool = False

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}:{self.version}"
        return self.name if self.alias == CHAMPION else f"{self.name}@{self.alias}"


def parse_ref(text: str, role: str, option: str) -> ModelRef:
    """``NAME``, ``NAME@alias`` or ``NAME:version`` as an explicit :class:`ModelRef`.

    Raises:
        InputError: A bad name, alias or version (naming ``option``).
    """
    text = text.strip()
    name, alias, version = text, CHAMPION, None
    if "@" in text:
        name, _, alias = text.partition("@")
        if not _ALIAS.match(alias):
            raise InputError(f"{option} {text!r}: the alias after '@' must be letters, digits, '_' or '-'")
    elif ":" in text:
        name, _, version = text.partition(":")
        if not version.isdigit():
            raise InputError(f"{option} {text!r}: the version after ':' must be a number (NAME:3)")
    check_name(name, option)
    return ModelRef(role, name, alias, version, option, explicit=True)


def parse_models(text: str | None, roles: Sequence[str]) -> dict[str, ModelRef]:
    """``--models role=REF,role=REF`` as explicit references by role.

    Raises:
        InputError: An unknown role, a repeated one, or an entry without ``=``.
    """
    out: dict[str, ModelRef] = {}
    for entry in (text or "").split(","):
        if not entry.strip():
            continue
        role, sep, ref = (part.strip() for part in entry.partition("="))
        if not sep or not ref:
            raise InputError(
                f"{MODELS_OPTION} {entry.strip()!r}: write role=MODEL (e.g. deal_win=deal_win_maven)"
            )
        if role not in roles:
            raise InputError(f"{MODELS_OPTION}: unknown role {role!r}; this command uses {', '.join(roles)}")
        if role in out:
            raise InputError(f"{MODELS_OPTION}: {role} is named twice")
        out[role] = parse_ref(ref, role, MODELS_OPTION)
    return out


def model_refs(
    defaults: Mapping[str, tuple[str, str]],
    named: Mapping[str, str | None] | None = None,
    models: str | None = None,
) -> dict[str, ModelRef]:
    """The reference of each role a command needs.

    Args:
        defaults: Per role, its default model name and the option that names it (``--close-model``).
        named: Per role, the value of its own option (``None``: not given).
        models: The ``--models`` mapping (``None``: not given).

    Raises:
        InputError: A bad reference, or a role named by both its option and ``--models``.
    """
    mapped = parse_models(models, list(defaults))
    out: dict[str, ModelRef] = {}
    for role, (name, option) in defaults.items():
        given = (named or {}).get(role)
        if given is not None and role in mapped:
            raise InputError(f"{role} is named by both {option} and {MODELS_OPTION}: keep one")
        if given is not None:
            out[role] = parse_ref(given, role, option)
        elif role in mapped:
            out[role] = replace(mapped[role], option=MODELS_OPTION)
        else:
            out[role] = ModelRef(role, name, option=option)
    return out


@dataclass(frozen=True)
class CurrentWarehouse:
    """The warehouse a command reads: its path and identity."""

    path: Path
    identity: str

    @classmethod
    def of(cls, path: Path) -> CurrentWarehouse:
        """The warehouse at ``path`` (given an identity now if it has none).

        Raises:
            FileNotFoundError: No warehouse there.
        """
        return cls(Path(path), warehouse_id(Path(path)))


def origin(meta: ModelMetadata) -> str:
    """Where a model was trained, in words."""
    if meta.warehouse_id:
        return f"the warehouse {meta.warehouse or '(path not recorded)'} (identity {meta.warehouse_id[:8]})"
    if meta.source == "flat_export":
        return "a flat export"
    return "data of unknown origin (logged before models recorded their warehouse)"


def check_binding(
    meta: ModelMetadata, name: str, version: str, ref: ModelRef, current: CurrentWarehouse | None
) -> str | None:
    """Refuse a default model bound elsewhere; a warning for an explicit one.

    Args:
        meta: The model version's metadata.
        name: Its registered name.
        version: Its version.
        ref: How it was chosen.
        current: The warehouse the command reads (``None``: none, nothing to check).

    Returns:
        ``None`` when the model belongs to ``current``, else the warning for an explicit model.

    Raises:
        ModelBindingError: ``ref`` is a default and the model was trained elsewhere.
    """
    if current is None or meta.warehouse_id == current.identity:
        return None
    where = origin(meta)
    if ref.explicit:
        return (
            f"{name} v{version} (named with {ref.option}) was trained on {where}, not on the current "
            f"warehouse {current.path}: used as asked"
        )
    train = cli_name(ref.role)
    raise ModelBindingError(
        f"{name} v{version}, the {ref.alias} of {name}, was trained on {where}, not on the current "
        f"warehouse {current.path} (identity {current.identity[:8]}). Train one on this warehouse "
        f"(forecast --warehouse {current.path} train {train} --promote), or name the model to use "
        f"explicitly: {_how_to_name(ref, name)}"
    )


def _how_to_name(ref: ModelRef, name: str) -> str:
    """The options that name ``name`` for ``ref``'s role (``--close-model X (or --models r=X)``)."""
    mapping = f"{MODELS_OPTION} {ref.role}={name}"
    return mapping if ref.option == MODELS_OPTION else f"{ref.option} {name} (or {mapping})"


def load_ref(ref: ModelRef, settings: Settings) -> LoadedModel:
    """Load the version ``ref`` names.

    Raises:
        LookupError: No such model, alias or version, with the versions that exist.
    """
    from mlflow.exceptions import MlflowException

    try:
        return load_model(ref.name, settings, ref.alias, version=ref.version)
    except MlflowException as exc:
        if ref.version is None:
            raise LookupError(f"model {ref.name!r} has no alias {ref.alias!r}: {exc.message}") from exc
        found = sorted(int(v.version) for v in client(settings).search_model_versions(f"name = '{ref.name}'"))
        raise LookupError(
            f"model {ref.name!r} has no version {ref.version!r}"
            + (f"; its versions are {found}" if found else "; train one first (forecast train …)")
        ) from exc


def resolve(
    ref: ModelRef, settings: Settings, current: CurrentWarehouse | None
) -> tuple[LoadedModel, list[str]]:
    """Load ``ref`` and check it against ``current`` (see :func:`check_binding`).

    Returns:
        The model and the warnings (logged too): one when an explicit model was trained elsewhere.

    Raises:
        LookupError: No such model version.
        ModelBindingError: A default model trained elsewhere.
    """
    model = load_ref(ref, settings)
    warning = check_binding(model.meta, model.name, model.version, ref, current)
    if warning is None:
        return model, []
    log.warning(warning)
    return model, [warning]


def peek(ref: ModelRef, settings: Settings) -> tuple[str, ModelMetadata] | None:
    """The version ``ref`` names and its metadata, without loading the model (``None``: absent)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    c = client(settings)
    try:
        mv: Any = (
            c.get_model_version(ref.name, ref.version)
            if ref.version is not None
            else c.get_model_version_by_alias(ref.name, ref.alias)
        )
    except MlflowException:
        return None
    meta = mlflow.models.Model.load(f"models:/{ref.name}/{mv.version}").metadata or {}
    return str(mv.version), ModelMetadata.from_dict(meta)
