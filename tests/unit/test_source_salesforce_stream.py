"""The streamed Salesforce adapter maps each chunk as the whole-file adapter maps the whole file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from forecast.data.sources import salesforce, salesforce_stream
from forecast.data.sources.base import SourceError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "salesforce"
AS_OF = pd.Timestamp("2024-06-30T00:00:00Z")


def _whole() -> dict[str, pd.DataFrame]:
    batch = salesforce.load(FIXTURES, as_of=AS_OF)
    return {Path(t.source_file).stem: t.frame for t in batch.tables}


def _streamed(export: salesforce_stream.StreamedExport, first: str | None = None) -> dict[str, pd.DataFrame]:
    files = {Path(str(chunks.path)).stem: chunks for _, chunks in export.files}
    order = [first, *[o for o in files if o != first]] if first else list(files)
    out = {}
    for obj in order:
        parts = [frame for _, frame in files[obj]]
        out[obj] = pd.concat(parts, ignore_index=True)
        assert list(out[obj].columns) == files[obj].columns
    return out


@pytest.mark.parametrize("first", [None, "Opportunity"])
def test_mapped_chunks_equal_the_whole_mapping(first: str | None) -> None:
    """In file order, and with the deals read before the leads (the lookup then reads Lead.csv)."""
    export = salesforce_stream.open_export(FIXTURES, chunk_rows=2, as_of=AS_OF)
    assert [t for t, _ in export.files] == [
        "reps", "accounts", "leads", "opportunities", "stage_history", "activities", "activities",
    ]  # fmt: skip
    assert export.notes == salesforce.load(FIXTURES, as_of=AS_OF).notes
    streamed, whole = _streamed(export, first), _whole()
    assert streamed.keys() == whole.keys()
    for obj, frame in whole.items():
        pd.testing.assert_frame_equal(streamed[obj], frame, obj=obj)
    assert streamed["Opportunity"]["lead_id"].notna().sum() == 2


def test_a_lead_file_read_in_part_is_completed_by_the_lookup() -> None:
    export = salesforce_stream.open_export(FIXTURES, chunk_rows=2, as_of=AS_OF)
    files = {Path(str(c.path)).stem: c for _, c in export.files}
    next(iter(files["Lead"]))  # only the first chunk (L1 -> O1); L5 -> O2 is in the third
    deals = pd.concat([f for _, f in files["Opportunity"]], ignore_index=True)
    pd.testing.assert_series_equal(deals["lead_id"], _whole()["Opportunity"]["lead_id"])


def test_an_event_file_without_a_start_column_is_refused_when_opened(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES, tmp_path / "sf")
    events = pd.read_csv(tmp_path / "sf" / "Event.csv", dtype=str)
    events.drop(columns=["StartDateTime", "ActivityDateTime", "ActivityDate"]).to_csv(
        tmp_path / "sf" / "Event.csv", index=False
    )
    with pytest.raises(SourceError, match=r"Event\.csv: missing a start column"):
        salesforce_stream.open_export(tmp_path / "sf", chunk_rows=2)
    assert not salesforce_stream.applies(tmp_path / "sf" / "Event.csv", 0)
    assert salesforce_stream.applies(tmp_path / "sf", 0)
    assert not salesforce_stream.applies(tmp_path / "sf", 10**9)
