"""Planning: for each reservation row, the door, the user level, the lock-local window, the rules.

Everything here is decided with Polars expressions over whole columns: there is no per-row
Python loop. Each step only touches rows that no earlier step rejected, and the first reason
found is the one a row keeps.

Reason codes (rejected unless noted):
    blank_row                       skipped: a row with no values at all
    invalid_row                     a required value is empty or unparseable (the column is named)
    duplicate_reservation           skipped: an identical copy of an earlier row
    duplicate_reservation_conflict  the same reservation_id with different content
    unknown_device / ambiguous_device / offline_codes_not_supported
    unknown_time_zone               neither the door nor its level names a zone we know
    unknown_user_level              the named (or configured default) level isn't on the door
    master_user_level_unsupported / one_time_use_unsupported
    user_level_times_mismatch       the row names a level and gives times that differ from it
    no_matching_user_level / ambiguous_user_level
    nonexistent_local_time          the window's start or end falls in a DST gap
    invalid_window / duration_exceeds_31_days / biweekly_needs_14_days
    daily_bound_times_differ        a 24-hour level whose check-in and check-out times differ
    in_the_past                     ends_at is not in the future
"""

from __future__ import annotations

import datetime as dt
import string

import polars as pl
from polars_hash import NonCryptographicHashingNameSpace

from pipeline.catalog import DeviceCatalog, is_known_zone
from pipeline.settings import CANONICAL_COLUMNS, CONTENT_COLUMNS, Config
from pipeline.stays import STAY_FORMATS, parse_stays, to_lock_local

PLAN_COLUMNS = (
    "reservation_id",
    "device_id",
    "door_name",
    "site_name",
    "user_level_name",
    "user_level_prefix",
    "starts_at",
    "ends_at",
    "starts_at_utc",
    "ends_at_utc",
    "max_time_rounding",
    "idempotency_tag",
    "name",
    "outcome",
    "reason",
    "message",
    "source_file",
    "source_line",
)

# Oracode windows over 31 consecutive days are refused by the lock (product page, "Duration").
MAX_WINDOW = dt.timedelta(days=31)
# A biweekly user level is a code valid for exactly two weeks (product page, "User Levels").
BIWEEKLY_DAYS = 14
# A daily-bound code uses the same time of day at both ends; the product page's own example
# ends at 23:59 for a 00:00 start, so "the same" allows the one-minute inclusive end.
DAILY_BOUND_SLACK_SECONDS = 60
# No field of a reservation is legitimately longer; a longer one is a broken export.
MAX_FIELD_CHARS = 1_000
TAG_PREFIX = "opl-"


def plan_reservations(
    reservations: pl.DataFrame,
    catalog: DeviceCatalog,
    config: Config,
    *,
    now: dt.datetime,
) -> pl.DataFrame:
    """Plan every reservation row; returns one row per input row with the PLAN_COLUMNS.

    ``reservations`` is what ``read_reservations`` returns. ``now`` (timezone-aware) decides
    ``in_the_past``. Deterministic: the same input, catalog, config and ``now`` give the same
    output, including tags and names.
    """
    frame = reservations.with_columns(
        reason=pl.lit(None, pl.String),
        message=pl.lit(None, pl.String),
        skipped=pl.lit(False),
    )
    frame = _check_values(frame)
    frame = _check_duplicates(frame)
    frame = _resolve_doors(frame, catalog)
    frame = to_lock_local(frame, "check_in", "door_zone")
    frame = to_lock_local(frame, "check_out", "door_zone")
    frame = _select_user_levels(frame, catalog, config)
    frame = _compute_windows(frame)
    frame = _check_rules(frame, now)
    frame = _name_codes(frame, config)
    return frame.select("row", *PLAN_COLUMNS).sort("row").drop("row")


def _reject(frame: pl.DataFrame, condition: pl.Expr, reason: str, message: pl.Expr) -> pl.DataFrame:
    """Give ``reason`` to the rows that meet ``condition`` and have no reason yet.

    The message is only built for the rows hit (usually few), then scattered into place.
    """
    hit = frame.select(pl.col("reason").is_null() & condition.fill_null(False)).to_series()
    positions = hit.arg_true()
    if positions.len() == 0:
        return frame
    messages = frame.filter(hit).select(message.cast(pl.String)).to_series()
    return frame.with_columns(
        frame["reason"].scatter(positions, reason),
        frame["message"].scatter(positions, messages),
    )


def _open() -> pl.Expr:
    return pl.col("reason").is_null()


def _text(value: str) -> pl.Expr:
    return pl.lit(value, pl.String)


def _check_values(frame: pl.DataFrame) -> pl.DataFrame:
    frame = parse_stays(parse_stays(frame, "check_in"), "check_out")
    # Exports often end in empty lines: skip them rather than fail the run over them.
    frame = frame.with_columns(skipped=pl.all_horizontal(pl.col(CANONICAL_COLUMNS).is_null()))
    frame = _reject(frame, pl.col("skipped"), "blank_row", _text("the row has no values"))
    frame = _reject(
        frame, pl.col("reservation_id").is_null(), "invalid_row", _text("reservation_id is empty")
    )
    frame = _reject(
        frame,
        pl.col("device_id").is_null() & pl.col("door_name").is_null(),
        "invalid_row",
        _text("device_id and door_name are both empty: one is needed to find the door"),
    )
    too_long = pl.coalesce(
        pl.when(pl.col(column).str.len_chars() > MAX_FIELD_CHARS).then(
            pl.format(
                f"{column} is {{}} characters long; at most {MAX_FIELD_CHARS} are accepted",
                pl.col(column).str.len_chars(),
            )
        )
        for column in CANONICAL_COLUMNS
    )
    frame = _reject(frame, too_long.is_not_null(), "invalid_row", too_long)
    for column in ("check_in", "check_out"):
        frame = _reject(frame, pl.col(column).is_null(), "invalid_row", _text(f"{column} is empty"))
        frame = _reject(
            frame,
            ~pl.col(f"{column}_ok"),
            "invalid_row",
            pl.format(f"{column} {{}} is not {STAY_FORMATS}", pl.col(column)),
        )
    return _reject(
        frame,
        pl.col("check_in_time").is_null() != pl.col("check_out_time").is_null(),
        "invalid_row",
        _text("check_in and check_out must both have a time of day, or neither"),
    )


def _check_duplicates(frame: pl.DataFrame) -> pl.DataFrame:
    """Same reservation_id: identical copies are planned once, differing copies all conflict."""
    content = pl.struct(CONTENT_COLUMNS)
    repeated = frame.select(
        pl.col("reservation_id").is_duplicated() & pl.col("reservation_id").is_not_null()
    ).to_series()
    if not repeated.any():
        return frame
    per_id = (
        frame.filter(repeated)
        .group_by("reservation_id")
        .agg(
            _copies=pl.len(),
            _variants=content.n_unique(),
            _first_row=pl.col("row").min(),
        )
    )
    first = frame.select(
        pl.col("row").alias("_first_row"),
        pl.col("source_file").alias("_first_file"),
        pl.col("source_line").alias("_first_line"),
    )
    frame = frame.join(
        per_id.join(first, on="_first_row"), on="reservation_id", how="left", maintain_order="left"
    )
    frame = _reject(
        frame,
        pl.col("_variants") > 1,
        "duplicate_reservation_conflict",
        pl.format(
            "reservation_id {} appears {} times with different content; fix the source",
            "reservation_id",
            "_copies",
        ),
    )
    is_copy = _open() & pl.col("_first_row").is_not_null() & (pl.col("row") != pl.col("_first_row"))
    frame = frame.with_columns(skipped=pl.col("skipped") | is_copy)
    frame = _reject(
        frame,
        is_copy,
        "duplicate_reservation",
        pl.format("identical to {} line {}", "_first_file", "_first_line"),
    )
    return frame.drop("_copies", "_variants", "_first_row", "_first_file", "_first_line")


def _key(column: str) -> pl.Expr:
    """The same case- and space-insensitive key the catalog builds for door and site names."""
    return pl.col(column).str.replace_all(r"\s+", " ").str.strip_chars().str.to_lowercase()


def _resolve_doors(frame: pl.DataFrame, catalog: DeviceCatalog) -> pl.DataFrame:
    doors = catalog.doors
    by_id = (
        frame.filter(_open() & pl.col("device_id").is_not_null())
        .select("row", "device_id")
        .join(doors.select("device_id"), on="device_id", how="semi")
        .select("row", pl.col("device_id").alias("_door"), pl.lit(1, pl.UInt32).alias("_matches"))
    )
    by_name = (
        frame.filter(_open() & pl.col("device_id").is_null())
        .select("row", _key("door_name").alias("door_key"), _key("site_name").alias("_want_site"))
        .join(doors.select("device_id", "door_key", "site_key", "site_name"), on="door_key")
        .filter(pl.col("_want_site").is_null() | (pl.col("_want_site") == pl.col("site_key")))
        .sort("row", "site_name", "device_id")
        .group_by("row", maintain_order=True)
        .agg(
            _door=pl.col("device_id").first(),
            _matches=pl.len(),
            _sites=pl.col("site_name").fill_null("(no site)").str.join(", "),
        )
    )
    resolved = pl.concat([by_id, by_name], how="diagonal")
    frame = frame.join(resolved, on="row", how="left")
    frame = _reject(
        frame,
        pl.col("_matches").is_null() & pl.col("device_id").is_not_null(),
        "unknown_device",
        pl.format("no dormakaba Oracode door has device_id {}", pl.col("device_id")),
    )
    frame = _reject(
        frame,
        pl.col("_matches").is_null(),
        "unknown_device",
        pl.format(
            "no dormakaba Oracode door is named {}{}",
            pl.col("door_name"),
            pl.format(" at site {}", pl.col("site_name")).fill_null(""),
        ),
    )
    frame = _reject(
        frame,
        pl.col("_matches") > 1,
        "ambiguous_device",
        pl.format(
            "{} doors are named {} (sites: {}); add site_name or use device_id",
            pl.col("_matches"),
            pl.col("door_name"),
            pl.col("_sites"),
        ),
    )
    door_columns = doors.select(
        pl.col("device_id").alias("_door"),
        pl.col("door_name").alias("_door_name"),
        pl.col("site_name").alias("_site_name"),
        "can_program_offline",
        "door_zone",
    )
    frame = frame.join(door_columns, on="_door", how="left").with_columns(
        device_id=pl.when(_open()).then(pl.col("_door")).otherwise(pl.col("device_id")),
        door_name=pl.when(_open()).then(pl.col("_door_name")).otherwise(pl.col("door_name")),
        site_name=pl.when(_open()).then(pl.col("_site_name")).otherwise(pl.col("site_name")),
    )
    frame = _reject(
        frame,
        ~pl.col("can_program_offline"),
        "offline_codes_not_supported",
        pl.format("door {} ({}) can't program offline access codes", "door_name", "device_id"),
    )
    frame = _reject(
        frame,
        ~pl.col("door_zone").is_in(_known_zones(frame, "door_zone")).fill_null(False),
        "unknown_time_zone",
        pl.format(
            "door {} has no usable time zone ({})",
            "device_id",
            pl.col("door_zone").fill_null("none given"),
        ),
    )
    return frame.drop("_door", "_matches", "_sites", "_door_name", "_site_name")


def _level_lists(levels: pl.DataFrame) -> dict[str, str]:
    """Per door, a readable list of its user levels for rejection messages."""
    flags = pl.concat_str(
        pl.when("is_24_hour").then(_text(", 24-hour")),
        pl.when("is_biweekly").then(_text(", biweekly")),
        pl.when("is_master").then(_text(", master")),
        pl.when("is_one_shot").then(_text(", one-shot")),
        ignore_nulls=True,
    )
    described = pl.format(
        "{} (prefix {}, {}→{}{})",
        "level_name",
        "level_prefix",
        pl.col("level_check_in").dt.strftime("%H:%M"),
        pl.col("level_check_out").dt.strftime("%H:%M"),
        flags,
    )
    lists = (
        levels.sort("device_id", "level_prefix")
        .group_by("device_id", maintain_order=True)
        .agg(described.str.join("; "))
    )
    return dict(lists.iter_rows())


def _default_levels(frame: pl.DataFrame, config: Config) -> pl.DataFrame:
    """Per open row, the configured default level's key (door setting wins over site setting)."""
    defaults = config.user_levels
    if not defaults.doors and not defaults.sites:
        return frame.with_columns(_default=pl.lit(None, pl.String))
    door_keys = {" ".join(k.split()).lower(): v for k, v in defaults.doors.items()}
    site_keys = {" ".join(k.split()).lower(): v for k, v in defaults.sites.items()}
    door_default = (
        pl.col("device_id")
        .str.to_lowercase()
        .replace_strict(door_keys, default=None, return_dtype=pl.String)
    )
    door_default = door_default.fill_null(
        _key("door_name").replace_strict(door_keys, default=None, return_dtype=pl.String)
    )
    site_default = _key("site_name").replace_strict(site_keys, default=None, return_dtype=pl.String)
    return frame.with_columns(_default=door_default.fill_null(site_default))


LEVEL_COLUMNS = (
    "level_name",
    "level_prefix",
    "level_check_in",
    "level_check_out",
    "level_zone",
    "is_24_hour",
    "is_biweekly",
    "is_master",
    "is_one_shot",
)


def _select_user_levels(
    frame: pl.DataFrame, catalog: DeviceCatalog, config: Config
) -> pl.DataFrame:
    """Pick each open row's user level: named, else by its times, else the door's default.

    Every path is a join on keys (door + name, door + times, door alone), so a row meets only
    the levels that can fit it; ``_options`` counts the equally good ones (more than one is
    ``ambiguous_user_level``).
    """
    frame = _default_levels(frame, config).with_columns(
        _stay_days=(pl.col("check_out_date") - pl.col("check_in_date")).dt.total_days(),
        _named=pl.col("user_level").is_not_null(),
        _timed=pl.col("check_in_time").is_not_null(),
    )
    # A configured default only applies to dates-only rows: a row with times picks by times.
    wanted = (
        pl.when(pl.col("_named"))
        .then(pl.col("user_level"))
        .when(~pl.col("_timed"))
        .then(pl.col("_default"))
    )
    rows = frame.filter(_open()).select(
        "row",
        "device_id",
        "check_in_time",
        "check_out_time",
        "_named",
        "_timed",
        _key_of(wanted).alias("_wanted_key"),
        wanted.str.strip_chars().alias("_wanted_text"),
        (pl.col("_stay_days") == BIWEEKLY_DAYS).alias("_fortnight"),
    )
    levels = catalog.levels.sort("device_id", "level_prefix")
    eligible = levels.filter(~pl.col("is_master") & ~pl.col("is_one_shot"))
    chosen = pl.concat(
        [_pick_best(_ranked_candidates(rows, levels, eligible)), _door_defaults(rows, eligible)],
        how="diagonal",
    )
    # Several fitting levels is no choice at all: keep none of them on the row.
    chosen = chosen.with_columns(
        pl.when(pl.col("_options") == 1).then(pl.col(c)).alias(c) for c in LEVEL_COLUMNS
    )
    frame = frame.join(chosen, on="row", how="left", maintain_order="left")
    return _reject_level_choices(frame, _level_lists(levels)).drop("_options", "_option_names")


def _ranked_candidates(
    rows: pl.DataFrame, levels: pl.DataFrame, eligible: pl.DataFrame
) -> pl.DataFrame:
    """Candidate levels for rows that name a level (or have a default) or give times."""
    by_name = rows.filter(pl.col("_wanted_key").is_not_null()).join(
        levels, left_on=["device_id", "_wanted_key"], right_on=["device_id", "level_key"]
    )
    by_prefix = rows.filter(pl.col("_named")).join(
        levels, left_on=["device_id", "_wanted_text"], right_on=["device_id", "level_prefix_text"]
    )
    timed = rows.filter(~pl.col("_named") & pl.col("_timed"))
    by_times = timed.join(
        eligible,
        left_on=["device_id", "check_in_time", "check_out_time"],
        right_on=["device_id", "level_check_in", "level_check_out"],
    ).with_columns(level_check_in="check_in_time", level_check_out="check_out_time")
    # Equal check-in and check-out times on a row ask for a daily-bound (24-hour) level.
    daily = (
        timed.filter(pl.col("check_in_time") == pl.col("check_out_time"))
        .join(
            eligible.filter("is_24_hour"),
            left_on=["device_id", "check_in_time"],
            right_on=["device_id", "level_check_in"],
        )
        .with_columns(level_check_in="check_in_time")
        .filter(pl.col("level_check_out") != pl.col("check_in_time"))
    )
    fits_stay = ~pl.col("is_biweekly") | pl.col("_fortnight")
    return pl.concat(
        [
            by_name.with_columns(_rank=pl.lit(0)),
            by_prefix.with_columns(_rank=pl.lit(1)),
            by_times.with_columns(_rank=pl.when(fits_stay).then(0).otherwise(1)),
            daily.with_columns(_rank=pl.when(fits_stay).then(0).otherwise(1)),
        ],
        how="diagonal",
    )


def _pick_best(candidates: pl.DataFrame) -> pl.DataFrame:
    """Per row, the best-ranked level (lowest prefix first) and how many tie for best."""
    best = candidates.filter(pl.col("_rank") == pl.col("_rank").min().over("row"))
    return (
        best.sort("row", "level_prefix")
        .group_by("row", maintain_order=True)
        .agg(
            pl.col(*LEVEL_COLUMNS).first(),
            _options=pl.len(),
            _option_names=pl.col("level_name").str.join(", "),
        )
    )


def _door_defaults(rows: pl.DataFrame, eligible: pl.DataFrame) -> pl.DataFrame:
    """For dates-only rows without a configured default: the door's only guest level.

    Computed once per door (and once more for 14-day stays, where a biweekly level also fits),
    then joined, so each row costs one lookup.
    """
    guest_levels = eligible.filter(~pl.col("is_24_hour"))
    per_door = pl.concat(
        [
            guest_levels.filter(~pl.col("is_biweekly") | pl.lit(fortnight))
            .group_by("device_id", maintain_order=True)
            .agg(
                pl.col(*LEVEL_COLUMNS).first(),
                _options=pl.len(),
                _option_names=pl.col("level_name").str.join(", "),
            )
            .with_columns(_fortnight=pl.lit(fortnight))
            for fortnight in (False, True)
        ]
    )
    dates_only = rows.filter(pl.col("_wanted_key").is_null() & ~pl.col("_timed"))
    return dates_only.select("row", "device_id", "_fortnight").join(
        per_door, on=["device_id", "_fortnight"]
    )


def _key_of(expr: pl.Expr) -> pl.Expr:
    return expr.str.replace_all(r"\s+", " ").str.strip_chars().str.to_lowercase()


def _reject_level_choices(frame: pl.DataFrame, level_lists: dict[str, str]) -> pl.DataFrame:
    none_chosen = pl.col("level_name").is_null() & pl.col("_options").is_null()
    levels = pl.col("device_id").replace_strict(level_lists, default="none", return_dtype=pl.String)
    frame = _reject(
        frame,
        none_chosen & pl.col("_named"),
        "unknown_user_level",
        pl.format(
            "door {} has no user level {}; its levels: {}", "door_name", "user_level", levels
        ),
    )
    frame = _reject(
        frame,
        none_chosen & pl.col("_default").is_not_null() & ~pl.col("_timed"),
        "unknown_user_level",
        pl.format(
            "the configured default user level {} is not on door {}; its levels: {}",
            "_default",
            "door_name",
            levels,
        ),
    )
    frame = _reject(
        frame,
        none_chosen & pl.col("_timed"),
        "no_matching_user_level",
        pl.format(
            "no user level of door {} runs {}→{}; its levels: {}",
            "door_name",
            pl.col("check_in_time").dt.strftime("%H:%M"),
            pl.col("check_out_time").dt.strftime("%H:%M"),
            levels,
        ),
    )
    frame = _reject(
        frame,
        none_chosen,
        "no_matching_user_level",
        pl.format(
            "door {} has no guest user level for a {}-day stay; its levels: {}",
            "door_name",
            "_stay_days",
            levels,
        ),
    )
    frame = _reject(
        frame,
        pl.col("_options") > 1,
        "ambiguous_user_level",
        pl.format(
            "door {} has {} user levels that fit ({}); name one in user_level or set a default",
            "door_name",
            "_options",
            "_option_names",
        ),
    )
    frame = _reject(
        frame,
        pl.col("is_master"),
        "master_user_level_unsupported",
        pl.format("user level {} is a master level; Seam can't create master codes", "level_name"),
    )
    frame = _reject(
        frame,
        pl.col("is_one_shot"),
        "one_time_use_unsupported",
        pl.format("user level {} is one-time-use; Seam can't create those codes", "level_name"),
    )
    mismatch = (
        pl.col("_named")
        & pl.col("_timed")
        & ~(
            (pl.col("level_check_in") == pl.col("check_in_time"))
            & (pl.col("level_check_out") == pl.col("check_out_time"))
        )
    )
    return _reject(
        frame,
        mismatch,
        "user_level_times_mismatch",
        pl.format(
            "user level {} runs {}→{} but the row says {}→{}",
            "level_name",
            pl.col("level_check_in").dt.strftime("%H:%M"),
            pl.col("level_check_out").dt.strftime("%H:%M"),
            pl.col("check_in_time").dt.strftime("%H:%M"),
            pl.col("check_out_time").dt.strftime("%H:%M"),
        ),
    )


def _compute_windows(frame: pl.DataFrame) -> pl.DataFrame:
    """starts_at/ends_at on the reservation's dates at the level's times, in the level's zone."""
    frame = frame.with_columns(
        _start_local=pl.col("check_in_date").dt.combine(pl.col("level_check_in")),
        _end_local=pl.col("check_out_date").dt.combine(pl.col("level_check_out")),
    )
    frame = _reject(
        frame,
        pl.col("level_name").is_not_null()
        & ~pl.col("level_zone").is_in(_known_zones(frame, "level_zone")).fill_null(False),
        "unknown_time_zone",
        pl.format("user level {} has an unknown time zone {}", "level_name", "level_zone"),
    )
    # A window end depends only on (date, level time, zone): localise each distinct one once,
    # from the stay dates in use and the (zone, time) pairs of the catalog's levels.
    dates = pl.concat([frame["check_in_date"], frame["check_out_date"]]).drop_nulls().unique()
    pairs = pl.concat(
        [
            frame.select("level_zone", pl.col(time).alias("_time"))
            for time in ("level_check_in", "level_check_out")
        ]
    )
    pairs = pairs.filter(pl.col("level_zone").is_in(_known_zones(frame, "level_zone"))).unique()
    walls = pairs.join(dates.alias("_date").to_frame(), how="cross").select(
        "level_zone", pl.col("_date").dt.combine(pl.col("_time")).alias("_wall")
    )
    localized = [_localize(part, str(zone)) for (zone,), part in walls.group_by("level_zone")]
    schema: dict[str, pl.DataType] = {
        "level_zone": pl.String(),
        "_wall": pl.Datetime("us"),
        "_local": pl.String(),
        "_utc": pl.Datetime("us", "UTC"),
        "_utc_text": pl.String(),
    }
    instants = pl.concat(localized) if localized else pl.DataFrame(schema=schema)
    for naive, name in (("_start_local", "starts_at"), ("_end_local", "ends_at")):
        frame = frame.join(
            instants.rename(
                {
                    "_wall": naive,
                    "_local": name,
                    "_utc": f"{name}_utc",
                    "_utc_text": f"{name}_utc_text",
                }
            ),
            on=["level_zone", naive],
            how="left",
            maintain_order="left",
        )
    for end, naive in (("starts_at", "_start_local"), ("ends_at", "_end_local")):
        frame = _reject(
            frame,
            pl.col(f"{end}_utc").is_null(),
            "nonexistent_local_time",
            pl.format(
                "{} {} does not exist in {} (the clocks skip it for daylight saving time)",
                _text(end),
                pl.col(naive).dt.strftime("%Y-%m-%d %H:%M"),
                "level_zone",
            ),
        )
    return frame


def _known_zones(frame: pl.DataFrame, column: str) -> list[str]:
    return [str(zone) for zone in frame[column].drop_nulls().unique() if is_known_zone(str(zone))]


def _localize(walls: pl.DataFrame, zone: str) -> pl.DataFrame:
    """Each wall time of ``zone`` as lock-local ISO 8601 with its own offset, plus UTC.

    The strings are assembled from parts (wall time as given, offset from the zone rules)
    rather than formatted with ``strftime``, which is several times slower.
    """
    # In a DST fold (the hour that repeats) the earlier instant is used, so the code is valid
    # from the first time the lock's clock shows the time; a DST gap gives null.
    walls = walls.with_columns(
        _utc=pl.col("_wall")
        .dt.replace_time_zone(zone, ambiguous="earliest", non_existent="null")
        .dt.convert_time_zone("UTC")
    )
    utc_wall = pl.col("_utc").dt.replace_time_zone(None)
    offset = (pl.col("_wall") - utc_wall).dt.total_minutes()
    return walls.with_columns(
        _local=pl.concat_str(
            _iso_wall(pl.col("_wall")),
            offset.replace_strict(_OFFSETS, default=None, return_dtype=pl.String),
        ),
        _utc_text=pl.concat_str(_iso_wall(utc_wall), _text("Z")),
    )


def _iso_wall(wall: pl.Expr) -> pl.Expr:
    return pl.concat_str(
        wall.dt.date().cast(pl.String), _text("T"), wall.dt.time().cast(pl.String).str.slice(0, 8)
    )


# Every UTC offset in use is a whole number of quarter hours between -12:00 and +14:00.
_OFFSETS = {
    minutes: f"{'+' if minutes >= 0 else '-'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    for minutes in range(-12 * 60, 14 * 60 + 1, 15)
}


def _check_rules(frame: pl.DataFrame, now: dt.datetime) -> pl.DataFrame:
    span = pl.col("_end_local") - pl.col("_start_local")
    frame = _reject(
        frame,
        pl.col("ends_at_utc") <= pl.col("starts_at_utc"),
        "invalid_window",
        pl.format("ends_at {} is not after starts_at {}", "ends_at", "starts_at"),
    )
    frame = _reject(
        frame,
        span > MAX_WINDOW,
        "duration_exceeds_31_days",
        pl.format(
            "the window {} → {} is longer than 31 days, the most a lock accepts",
            "starts_at",
            "ends_at",
        ),
    )
    frame = _reject(
        frame,
        pl.col("is_biweekly") & (pl.col("_stay_days") != BIWEEKLY_DAYS),
        "biweekly_needs_14_days",
        pl.format(
            "user level {} is biweekly: the stay must be 14 days, not {}",
            "level_name",
            "_stay_days",
        ),
    )
    seconds_in = pl.col("level_check_in").cast(pl.Int64) // 1_000_000_000
    seconds_out = pl.col("level_check_out").cast(pl.Int64) // 1_000_000_000
    gap = (seconds_in - seconds_out).abs()
    frame = _reject(
        frame,
        pl.col("is_24_hour") & (pl.min_horizontal(gap, 86_400 - gap) > DAILY_BOUND_SLACK_SECONDS),
        "daily_bound_times_differ",
        pl.format("24-hour user level {} has different check-in and check-out times", "level_name"),
    )
    return _reject(
        frame,
        pl.col("ends_at_utc") <= pl.lit(now).dt.convert_time_zone("UTC"),
        "in_the_past",
        pl.format("the window ends at {}, which has already passed", "ends_at"),
    )


def _name_codes(frame: pl.DataFrame, config: Config) -> pl.DataFrame:
    frame = frame.with_columns(
        outcome=pl.when(pl.col("skipped"))
        .then(_text("skipped"))
        .when(pl.col("reason").is_null())
        .then(_text("planned"))
        .otherwise(_text("rejected")),
        user_level_name=pl.col("level_name"),
        user_level_prefix=pl.col("level_prefix"),
        max_time_rounding=pl.when(pl.col("is_24_hour"))
        .then(_text("1d"))
        .when(pl.col("is_24_hour").is_not_null())
        .then(_text("1h")),
    )
    is_planned = pl.col("outcome") == "planned"
    frame = frame.with_columns(idempotency_tag=pl.when(is_planned).then(_tag()))
    return frame.with_columns(
        name=pl.when(is_planned).then(_render_name(config.name_template)),
        starts_at_utc=pl.col("starts_at_utc_text"),
        ends_at_utc=pl.col("ends_at_utc_text"),
    )


def _tag() -> pl.Expr:
    """Idempotency tag: ``opl-`` and XXH3-64 of reservation id, door and window, in decimal.

    Polars' own ``hash`` is documented as unstable across versions, and a tag must stay the
    same for as long as the code exists (apply finds existing codes by it), so this is XXH3,
    a fixed, specified algorithm, computed column-wise by polars-hash. 64 bits make an
    accidental collision among one door's codes vanishingly unlikely.
    """
    key = pl.concat_str("reservation_id", "device_id", "starts_at", "ends_at", separator="\x1f")
    digest = NonCryptographicHashingNameSpace(key).xxh3_64().cast(pl.String).str.zfill(20)
    return pl.concat_str(_text(TAG_PREFIX), digest)


def _render_name(template: str) -> pl.Expr:
    """The code name from the template (validated in settings to contain ``{tag}``)."""
    fields = {
        "tag": pl.col("idempotency_tag"),
        "reservation_id": pl.col("reservation_id"),
        "guest_name": pl.col("guest_name"),
        "door_name": pl.col("door_name"),
        "site_name": pl.col("site_name"),
        "user_level_name": pl.col("user_level_name"),
    }
    pieces: list[pl.Expr] = []
    for literal, field, _, _ in string.Formatter().parse(template):
        if literal:
            pieces.append(_text(literal))
        if field is not None:
            pieces.append(fields[field].fill_null(""))
    # Blank fields leave their surrounding spaces behind; fold them (a regex is 5x slower).
    name = pl.concat_str(pieces)
    for _ in range(2):
        name = name.str.replace_all("  ", " ", literal=True)
    return name.str.strip_chars()
