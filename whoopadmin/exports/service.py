"""Exports of one user's stored data, as byte chunks to stream (README "Exports").

Three formats, each a generator of ``bytes``:

- ``csv``: a zip with one CSV per type (``sleep.csv``, ``recovery.csv``, ``cycle.csv``,
  ``workout.csv``, ``body.csv``): the record's identity and times, then one column per
  indicator of that type (names and units as in the deliveries).
- ``ndjson``: one JSON object per line and record: ``provider``, ``type``, ``id``,
  ``start``/``end``, the normalised ``indicators`` and the ``raw`` WHOOP object.
- ``fhir``: a FHIR R4 ``Bundle`` of type ``collection`` holding one ``Observation`` per
  indicator, each built and validated with ``fhir.resources`` (its ``R4B`` package: R4B
  changed nothing in ``Observation`` and ``Bundle``, so what it validates is valid R4).

Records are read in keyset batches of ``BATCH`` rows (plain column tuples, so nothing
accumulates in the session's identity map) and the zip is written into a small buffer that
is drained after every batch: a year of data exports in constant memory.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fhir.resources.R4B.observation import Observation
from sqlalchemy import select

from whoopadmin import audit
from whoopadmin.audit import utcnow
from whoopadmin.data import service as data_service
from whoopadmin.extensions import db
from whoopadmin.sync.models import WhoopRecord
from whoopadmin.whoop import normalise as norm

FORMATS = ("csv", "ndjson", "fhir")
MEDIA_TYPES = {
    "csv": "application/zip",
    "ndjson": "application/x-ndjson",
    "fhir": "application/fhir+json",
}
EXTENSIONS = {"csv": "zip", "ndjson": "ndjson", "fhir": "fhir.json"}
BATCH = 500

# Export types (provider-neutral, as the API names them) → the stored record type.
TYPES = data_service.TYPES

# The indicator columns of each type's CSV, in this order (tests check they cover
# ``normalise.INDICATORS`` exactly, so a new indicator cannot be left out silently).
COLUMNS = {
    "sleep": [
        "sleep_nap",
        "sleep_duration",
        "sleep_in_bed_time",
        "sleep_awake_time",
        "sleep_no_data_time",
        "sleep_light_time",
        "sleep_deep_time",
        "sleep_rem_time",
        "sleep_asleep_time",
        "sleep_cycle_count",
        "sleep_disturbance_count",
        "sleep_need_baseline",
        "sleep_need_from_debt",
        "sleep_need_from_strain",
        "sleep_need_from_nap",
        "sleep_efficiency",
        "sleep_performance",
        "sleep_consistency",
        "respiratory_rate",
    ],
    "recovery": [
        "recovery_score",
        "hrv_rmssd",
        "resting_heart_rate",
        "spo2",
        "skin_temperature",
        "recovery_user_calibrating",
    ],
    "cycle": [
        "cycle_strain",
        "cycle_energy",
        "cycle_calories",
        "cycle_average_heart_rate",
        "cycle_max_heart_rate",
    ],
    "workout": [
        "workout_sport",
        "workout_duration",
        "workout_strain",
        "workout_average_heart_rate",
        "workout_max_heart_rate",
        "workout_energy",
        "workout_calories",
        "workout_percent_recorded",
        *[f"workout_zone_{i}_time" for i in range(6)],
        "workout_distance",
        "workout_altitude_gain",
        "workout_altitude_change",
    ],
    "body": ["height", "weight", "max_heart_rate"],
}
IDENTITY_COLUMNS = [
    "provider",
    "user_id",
    "id",
    "start",
    "end",
    "timezone_offset",
    "score_state",
    "updated_at",
]

# --- FHIR -----------------------------------------------------------------------------

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
LOCAL_CODES = "https://whoopadmin.dev/fhir/CodeSystem/indicators"
PROVIDER_TAGS = "https://whoopadmin.dev/fhir/CodeSystem/provider"
USER_IDS = "https://whoopadmin.dev/fhir/NamingSystem/user-id"
RECORD_IDS = "https://whoopadmin.dev/fhir/NamingSystem/record-id"
CATEGORIES = "http://terminology.hl7.org/CodeSystem/observation-category"
# Deterministic resource ids: the same record exports to the same Observation ids.
ID_NAMESPACE = uuid.UUID("6f1d0c52-8c1e-4b53-9a55-1f0d0e5b7a10")

# LOINC codes where one exists for what WHOOP measures; every indicator also carries
# its own code in LOCAL_CODES (HRV RMSSD and skin temperature have no exact LOINC code).
LOINC_CODES: dict[str, list[tuple[str, str]]] = {
    "resting_heart_rate": [("40443-4", "Heart rate --resting")],
    "respiratory_rate": [("9279-1", "Respiratory rate")],
    "spo2": [
        ("2708-6", "Oxygen saturation in Arterial blood"),
        ("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry"),
    ],
    "weight": [("29463-7", "Body weight")],
    "height": [("8302-2", "Body height")],
    "sleep_duration": [("93832-4", "Sleep duration")],
    "sleep_deep_time": [("93831-6", "Deep sleep duration")],
    "sleep_light_time": [("93830-8", "Light sleep duration")],
    "sleep_rem_time": [("93829-0", "REM sleep duration")],
}
VITAL_SIGNS = {"resting_heart_rate", "respiratory_rate", "spo2", "weight", "height"}
# Our units → UCUM (unit shown, code). "bool" and text indicators have no unit.
UCUM_UNITS = {
    "min": ("min", "min"),
    "%": ("%", "%"),
    "bpm": ("/min", "/min"),
    "breaths/min": ("/min", "/min"),
    "ms": ("ms", "ms"),
    "°C": ("Cel", "Cel"),
    "kJ": ("kJ", "kJ"),
    "kcal": ("kcal", "kcal"),
    "m": ("m", "m"),
    "kg": ("kg", "kg"),
    "count": ("{count}", "{count}"),
    "strain": ("{score}", "{score}"),
}


class ExportError(ValueError):
    """An export that cannot be made; ``code`` says why (``unknown_format``)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Subject:
    """Whose data: the link's id, public id and WHOOP user id (read once, up front)."""

    link_id: int
    user_id: str
    whoop_user_id: int | None

    @classmethod
    def of(cls, link) -> Subject:
        return cls(link.id, link.uid, link.whoop_user_id)


@dataclass(frozen=True)
class Record:
    """One stored record, as the exports see it."""

    type: str  # export type: sleep, recovery, cycle, workout, body
    id: str  # WHOOP's id (as in the deliveries' whoop_id)
    start: str | None
    end: str | None
    raw: dict[str, Any]
    indicators: list[norm.Indicator]


def check_format(value: str | None) -> str:
    """The format named by ``value``; ExportError ``unknown_format`` otherwise."""
    if value not in FORMATS:
        raise ExportError(f"format must be one of {', '.join(FORMATS)}.", "unknown_format")
    return value


def filename(subject: Subject, fmt: str, when: datetime | None = None) -> str:
    """The download's file name: ``whoop-<user id>-<date>.<ext>``."""
    return f"whoop-{subject.user_id}-{(when or utcnow()):%Y%m%d}.{EXTENSIONS[fmt]}"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def batches(subject: Subject, export_type: str, size: int = BATCH) -> Iterator[list]:
    """The stored, not deleted records of one type, ``size`` rows per query (keyset on id)."""
    stored = TYPES[export_type]
    last = 0
    while True:
        rows = db.session.execute(
            select(
                WhoopRecord.id,
                WhoopRecord.whoop_id,
                WhoopRecord.start,
                WhoopRecord.end,
                WhoopRecord.raw,
            )
            .where(
                WhoopRecord.link_id == subject.link_id,
                WhoopRecord.type == stored,
                WhoopRecord.deleted.is_(False),
                WhoopRecord.id > last,
            )
            .order_by(WhoopRecord.id)
            .limit(size)
        ).all()
        if not rows:
            return
        yield [_record(subject, export_type, row) for row in rows]
        if len(rows) < size:
            return
        last = rows[-1].id


def _record(subject: Subject, export_type: str, row) -> Record:
    raw = row.raw if isinstance(row.raw, dict) else {}
    try:
        indicators = norm.normalise(TYPES[export_type], raw, subject.whoop_user_id)
    except ValueError:
        indicators = []
    start = raw.get("start") if isinstance(raw.get("start"), str) else _iso(row.start)
    end = raw.get("end") if isinstance(raw.get("end"), str) else _iso(row.end)
    return Record(export_type, row.whoop_id, start, end, raw, indicators)


def records(subject: Subject, size: int = BATCH) -> Iterator[list[Record]]:
    """Every exported type's records, batch by batch."""
    for export_type in TYPES:
        yield from batches(subject, export_type, size)


# --- NDJSON ---------------------------------------------------------------------------


def ndjson_line(subject: Subject, record: Record) -> dict[str, Any]:
    """One NDJSON record: the same ids, indicator names and units as the deliveries."""
    raw = record.raw
    return {
        "provider": "whoop",
        "user_id": subject.user_id,
        "type": record.type,
        "id": record.id,
        "start": record.start,
        "end": record.end,
        "timezone_offset": raw.get("timezone_offset"),
        "score_state": raw.get("score_state"),
        "updated_at": raw.get("updated_at"),
        "indicators": [
            {"name": i.name, "value": i.value, "unit": i.unit} for i in record.indicators
        ],
        "raw": raw,
    }


def ndjson(subject: Subject, size: int = BATCH) -> Iterator[bytes]:
    """The NDJSON export, one chunk per batch."""
    for batch in records(subject, size):
        yield b"".join(
            json.dumps(ndjson_line(subject, r), separators=(",", ":")).encode() + b"\n"
            for r in batch
        )


# --- CSV (zip) ------------------------------------------------------------------------


class _Sink(io.RawIOBase):
    """An unseekable file the zip is written to; ``drain`` takes what was written."""

    def __init__(self) -> None:
        super().__init__()
        self._chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self._chunks.append(bytes(data))
        return len(data)

    def drain(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data


def _cell(value: Any) -> Any:
    """A CSV cell; text that a spreadsheet would run as a formula is quoted with '."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


def csv_row(subject: Subject, record: Record) -> list[Any]:
    """One CSV row: identity columns, then the type's indicator columns."""
    values = {i.name: i.value for i in record.indicators}
    raw = record.raw
    identity = [
        "whoop",
        subject.user_id,
        record.id,
        record.start,
        record.end,
        raw.get("timezone_offset"),
        raw.get("score_state"),
        raw.get("updated_at"),
    ]
    return [_cell(v) for v in identity] + [_cell(values.get(n)) for n in COLUMNS[record.type]]


def csv_zip(subject: Subject, size: int = BATCH) -> Iterator[bytes]:
    """The zip of one CSV per type, streamed: each batch's bytes leave before the next."""
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for export_type, columns in COLUMNS.items():
            with (
                archive.open(f"{export_type}.csv", "w") as entry,
                io.TextIOWrapper(entry, encoding="utf-8", newline="") as text,
            ):
                writer = csv.writer(text)
                writer.writerow(IDENTITY_COLUMNS + columns)
                for batch in batches(subject, export_type, size):
                    writer.writerows(csv_row(subject, r) for r in batch)
                    text.flush()
                    if chunk := sink.drain():
                        yield chunk
            if chunk := sink.drain():
                yield chunk
    yield sink.drain()


# --- FHIR -----------------------------------------------------------------------------


def _coding(name: str, unit: str | None) -> list[dict[str, str]]:
    label = name.replace("_", " ")
    if unit and unit not in ("bool", "count", "strain"):
        label = f"{label} ({unit})"
    codings = [
        {"system": LOINC, "code": code, "display": d} for code, d in LOINC_CODES.get(name, [])
    ]
    codings.append({"system": LOCAL_CODES, "code": name, "display": label})
    return codings


def observation(subject: Subject, record: Record, indicator: norm.Indicator) -> Observation:
    """One indicator as a validated FHIR Observation (raises if it would not be valid)."""
    ident = f"{subject.user_id}/{record.type}/{record.id}/{indicator.name}"
    category = "vital-signs" if indicator.name in VITAL_SIGNS else "activity"
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": str(uuid.uuid5(ID_NAMESPACE, ident)),
        "meta": {"tag": [{"system": PROVIDER_TAGS, "code": "whoop", "display": "WHOOP"}]},
        "identifier": [{"system": RECORD_IDS, "value": f"whoop/{record.type}/{record.id}"}],
        "status": "final",
        "category": [{"coding": [{"system": CATEGORIES, "code": category}]}],
        "code": {"coding": _coding(indicator.name, indicator.unit), "text": indicator.name},
        "subject": {"identifier": {"system": USER_IDS, "value": subject.user_id}},
    }
    start = norm.parse_timestamp(indicator.start) or norm.parse_timestamp(record.start)
    end = norm.parse_timestamp(indicator.end) or norm.parse_timestamp(record.end)
    if start and end and end >= start:
        resource["effectivePeriod"] = {"start": _iso(start), "end": _iso(end)}
    elif start:
        resource["effectiveDateTime"] = _iso(start)
    value = indicator.value
    if isinstance(value, bool):
        resource["valueBoolean"] = value
    elif isinstance(value, int | float):
        unit, code = UCUM_UNITS.get(indicator.unit or "", (indicator.unit, None))
        quantity: dict[str, Any] = {"value": value}
        if unit:
            quantity["unit"] = unit
        if code:
            quantity.update(system=UCUM, code=code)
        resource["valueQuantity"] = quantity
    else:
        resource["valueString"] = str(value)
    return Observation.model_validate(resource)


def fhir_bundle(subject: Subject, size: int = BATCH) -> Iterator[bytes]:
    """A FHIR R4 Bundle (collection) of Observations, written entry by entry."""
    head = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"tag": [{"system": PROVIDER_TAGS, "code": "whoop", "display": "WHOOP"}]},
        "type": "collection",
        "timestamp": _iso(utcnow().replace(microsecond=0)),
    }
    yield json.dumps(head, separators=(",", ":"))[:-1].encode() + b',"entry":['
    first = True
    for batch in records(subject, size):
        parts = []
        for record in batch:
            for indicator in record.indicators:
                resource = observation(subject, record, indicator)
                entry = f'{{"fullUrl":"urn:uuid:{resource.id}","resource":'
                entry += resource.model_dump_json(exclude_none=True) + "}"
                parts.append(entry if first else "," + entry)
                first = False
        if parts:
            yield "".join(parts).encode()
    yield b"]}"


BUILDERS = {"csv": csv_zip, "ndjson": ndjson, "fhir": fhir_bundle}


def export(subject: Subject, fmt: str, size: int = BATCH) -> Iterator[bytes]:
    """The chunks of one export of ``subject``'s data in format ``fmt``."""
    return BUILDERS[check_format(fmt)](subject, size)


def begin(actor, link, fmt: str | None) -> tuple[Subject, str]:
    """Check an export of ``link`` in ``fmt`` may be made, audit-log it, commit.

    ExportError ``unknown_format``, or ``erasure_pending`` for a link whose erasure is
    scheduled (its data leaves nowhere meanwhile, as with deliveries). Returns what
    ``export`` needs: the subject (read now, so streaming needs no ORM object) and format.
    """
    fmt = check_format(fmt)
    if link.status == "erasing":
        raise ExportError(
            "This user's erasure is scheduled: nothing is exported meanwhile (undo the "
            "erasure to export).",
            "erasure_pending",
        )
    subject = Subject.of(link)
    audit.record(actor, "link.export", link, format=fmt, user_id=link.uid)
    db.session.commit()
    return subject, fmt
