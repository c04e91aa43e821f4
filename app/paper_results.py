"""The MAE paper's published results, loaded and validated from ``app/data/paper_results.json``.

The data file is built by ``scripts/build_paper_results.py`` from the shared reference
transcription; every entry keeps its provenance. The pydantic models here check the file's
shape and its internal consistency (every row has exactly the declared columns, number columns
hold numbers, per-point x-status lists line up with the rows), so a broken edit fails at start-up
and in the tests, never half-way through drawing a page.
"""

from __future__ import annotations

import csv
import io
import math
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .paper_entries import REQUIRED_RESULTS

DATA_FILE = Path(__file__).resolve().parent / "data" / "paper_results.json"

Cell = str | int | float | bool | None
XStatus = Literal["anchored", "inferred", "uncertain"]


class PaperResultsError(ValueError):
    """The paper-results data file is missing or invalid."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Column(_Frozen):
    """One column of a paper table: its key in each row, a label, a unit and a value kind."""

    key: str
    label: str
    unit: str | None = None
    kind: Literal["number", "text", "flag"]


class DerivedRow(_Frozen):
    """A row computed from two others (Table 7's Δ row), never typed into the data file."""

    label: str
    op: Literal["difference"]
    label_column: str
    minuend: str
    subtrahend: str


class ResultEntry(_Frozen):
    """One table or figure of the paper, with its rows and provenance."""

    name: str
    title: str
    paper_ref: str | None
    kind: Literal["table", "figure"]
    columns: list[Column] = Field(min_length=1)
    rows: list[dict[str, Cell]] = Field(min_length=1)
    provenance: str = Field(min_length=1)
    notes: str | None = None
    approximate: bool = False
    x_assignment_inferred: bool = False
    confidence: dict[str, str] = Field(default_factory=dict)
    caveats: list[str] = Field(default_factory=list)
    footnotes: dict[str, str] = Field(default_factory=dict)
    extra_points: list[dict[str, Cell]] = Field(default_factory=list)
    derived_rows: list[DerivedRow] = Field(default_factory=list)
    heat: Literal["row", "column"] | None = None
    lower_is_better_rows: list[str] = Field(default_factory=list)
    x_status: dict[str, list[XStatus]] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ResultEntry:
        keys = [c.key for c in self.columns]
        if len(set(keys)) != len(keys):
            raise ValueError(f"{self.name}: duplicate column keys {keys}")
        for i, row in enumerate(self.rows):
            if list(row) != keys:
                raise ValueError(f"{self.name}: row {i} has keys {list(row)}, expected {keys}")
            for col in self.columns:
                value = row[col.key]
                if value is None:
                    continue
                if col.kind == "number" and (isinstance(value, bool)
                                             or not isinstance(value, (int, float))
                                             or not math.isfinite(value)):
                    raise ValueError(f"{self.name}: row {i} column {col.key!r} is not a number")
                if col.kind == "flag" and not isinstance(value, bool):
                    raise ValueError(f"{self.name}: row {i} column {col.key!r} is not a flag")
                if col.kind == "text" and not isinstance(value, str):
                    raise ValueError(f"{self.name}: row {i} column {col.key!r} is not text")
        if self.x_status is not None:
            for key, status in self.x_status.items():
                if key not in keys:
                    raise ValueError(f"{self.name}: x_status for unknown column {key!r}")
                if len(status) != len(self.rows):
                    raise ValueError(f"{self.name}: x_status[{key!r}] has {len(status)} entries "
                                     f"for {len(self.rows)} rows")
        for derived in self.derived_rows:
            labels = [row.get(derived.label_column) for row in self.rows]
            for operand in (derived.minuend, derived.subtrahend):
                if labels.count(operand) != 1:
                    raise ValueError(f"{self.name}: derived row operand {operand!r} must match "
                                     f"exactly one row")
        for label in self.lower_is_better_rows:
            if not any(label in row.values() for row in self.rows):
                raise ValueError(f"{self.name}: lower_is_better row {label!r} not found")
        return self

    # -- helpers used by the figures and the API --------------------------------------------
    def column(self, key: str) -> Column:
        for col in self.columns:
            if col.key == key:
                return col
        raise KeyError(f"{self.name} has no column {key!r}")

    def values(self, key: str) -> list[Cell]:
        """The column ``key`` as a list, in row order."""
        self.column(key)
        return [row[key] for row in self.rows]

    def computed_rows(self) -> list[dict[str, Cell]]:
        """The derived rows (e.g. Table 7's Δ), computed from the stored rows."""
        out = []
        for derived in self.derived_rows:
            by_label = {row[derived.label_column]: row for row in self.rows}
            a, b = by_label[derived.minuend], by_label[derived.subtrahend]
            row: dict[str, Cell] = {}
            for col in self.columns:
                if col.key == derived.label_column:
                    row[col.key] = derived.label
                elif col.kind == "number" and a[col.key] is not None and b[col.key] is not None:
                    row[col.key] = round(float(a[col.key]) - float(b[col.key]), 6)
                else:
                    row[col.key] = None
            out.append(row)
        return out

    def to_csv(self) -> str:
        """The rows (and computed rows) as CSV with the column keys as header."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        keys = [c.key for c in self.columns]
        status_keys = list(self.x_status or {})
        writer.writerow(keys + [f"{k}_x_status" for k in status_keys])
        for i, row in enumerate(self.rows):
            writer.writerow([_csv_cell(row[k]) for k in keys]
                            + [self.x_status[k][i] for k in status_keys])  # type: ignore[index]
        for row in self.computed_rows():
            writer.writerow([_csv_cell(row[k]) for k in keys] + ["" for _ in status_keys])
        return buf.getvalue()


def _csv_cell(value: Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class PaperSource(_Frozen):
    reference_file: str
    reference_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    paper: dict[str, Any]
    accuracy_units: str | None = None
    versions_note: str | None = None


class PaperResults(_Frozen):
    """The whole data file."""

    schema_version: Literal[1]
    generated_by: str
    source: PaperSource
    conventions: dict[str, str]
    x_status_legend: dict[XStatus, str]
    results: dict[str, ResultEntry]

    @model_validator(mode="after")
    def _complete(self) -> PaperResults:
        for name, entry in self.results.items():
            if entry.name != name:
                raise ValueError(f"entry {name!r} carries name {entry.name!r}")
        missing = [name for name in REQUIRED_RESULTS if name not in self.results]
        if missing:
            raise ValueError(f"missing entries: {missing}")
        return self

    def get(self, name: str) -> ResultEntry:
        try:
            return self.results[name]
        except KeyError:
            raise KeyError(name) from None


def load_paper_results(path: str | Path | None = None) -> PaperResults:
    """Read and validate the data file; raise :class:`PaperResultsError` with the reason."""
    file = Path(path) if path is not None else DATA_FILE
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise PaperResultsError(f"cannot read {file}: {exc}") from exc
    try:
        return PaperResults.model_validate_json(text)
    except ValueError as exc:  # pydantic.ValidationError is a ValueError
        raise PaperResultsError(f"{file} is invalid: {exc}") from exc


@lru_cache(maxsize=1)
def paper_results() -> PaperResults:
    """The app's copy of the paper results, loaded once."""
    return load_paper_results()
