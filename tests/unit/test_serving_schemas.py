"""Request models of the service: built from the feature catalogue, strict on names, types and ranges."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from forecast.features.build import feature_catalogue
from forecast.serving.schemas import (
    DealRecord,
    DealRequest,
    FlagsRequest,
    LeadRecord,
    LeadScoreRequest,
    RevenueRequest,
)


def _locs(exc: ValidationError) -> list[tuple]:
    return [tuple(e["loc"]) for e in exc.errors()]


def test_every_catalogue_feature_is_an_optional_field() -> None:
    for model, entity, id_col in (
        (LeadRecord, "lead", "lead_id"),
        (DealRecord, "opportunity", "opportunity_id"),
    ):
        names = {f.name for f in feature_catalogue(entity)}
        assert names | {id_col, "as_of"} == set(model.model_fields)
        assert [n for n, f in model.model_fields.items() if f.is_required()] == [id_col]


@pytest.mark.parametrize(
    ("record", "loc"),
    [
        ({"lead_id": "L", "act_call_7d": -1}, ("act_call_7d",)),
        ({"lead_id": "L", "act_email_open_rate": 1.01}, ("act_email_open_rate",)),
        ({"lead_id": "L", "employees": 1e13}, ("employees",)),
        ({"lead_id": "L", "age_days": 40_000}, ("age_days",)),
        ({"lead_id": "L", "employees": "lots"}, ("employees",)),
        ({"lead_id": "L", "source": "x" * 201}, ("source",)),
        ({"lead_id": "L", "source": 3}, ("source",)),
        ({"lead_id": "L", "surce": "web"}, ("surce",)),
        ({"lead_id": ""}, ("lead_id",)),
        ({"lead_id": "   "}, ("lead_id",)),
        ({"source": "web"}, ("lead_id",)),
        ({"lead_id": "L", "as_of": "1800-01-01T00:00:00"}, ("as_of",)),
        ({"lead_id": "L", "as_of": "0001-01-01T00:00:00+01:00"}, ("as_of",)),
        ({"lead_id": "L", "as_of": "9999-12-31T23:59:59-01:00"}, ("as_of",)),
        ({"lead_id": "L", "as_of": "2150-01-01T00:00:00"}, ("as_of",)),
    ],
)
def test_bad_values_name_their_field(record: dict, loc: tuple) -> None:
    with pytest.raises(ValidationError) as err:
        LeadRecord.model_validate(record)
    assert loc in _locs(err.value)


def test_signed_features_and_zoned_times() -> None:
    deal = DealRecord.model_validate(
        {"opportunity_id": "O", "days_to_expected_close": -30, "as_of": "2026-03-01T10:00:00+02:00"}
    )
    assert deal.days_to_expected_close == -30  # type: ignore[attr-defined]
    assert deal.as_of.isoformat() == "2026-03-01T08:00:00"  # type: ignore[attr-defined]


def test_exactly_one_of_record_or_list() -> None:
    assert LeadScoreRequest.model_validate({"lead": {"lead_id": "a"}}).lead is not None
    for bad in ({}, {"lead": {"lead_id": "a"}, "leads": [{"lead_id": "b"}]}, {"leads": []}):
        with pytest.raises(ValidationError):
            LeadScoreRequest.model_validate(bad)
    with pytest.raises(ValidationError) as err:
        DealRequest.model_validate({"deals": [{"opportunity_id": str(i)} for i in range(1001)]})
    assert ("deals",) in _locs(err.value)
    with pytest.raises(ValidationError):
        FlagsRequest.model_validate({"lead": {"lead_id": "a"}, "deal": {"opportunity_id": "b"}})
    assert FlagsRequest.model_validate({"deals": [{"opportunity_id": "b"}]}).records()[0] == "opportunity"


def test_revenue_request_enums_and_ranges() -> None:
    assert RevenueRequest.model_validate({}).periods == 3
    for bad, loc in (
        ({"by": "year"}, ("by",)),
        ({"group": "rep"}, ("group",)),
        ({"periods": 13}, ("periods",)),
    ):
        with pytest.raises(ValidationError) as err:
            RevenueRequest.model_validate(bad)
        assert loc in _locs(err.value)
