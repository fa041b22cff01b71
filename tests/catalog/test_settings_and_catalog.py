"""Settings, config files, device data parsing and fetching devices from Seam."""

from __future__ import annotations

import datetime as dt
import json

import anyio
import httpx
import pytest

from pipeline.catalog.doors import DeviceCatalog, parse_time_of_day, read_device_file
from pipeline.cli import main
from pipeline.common.errors import ConfigError, DeviceDataError, SeamUnavailableError
from pipeline.common.settings import (
    BudgetConfig,
    BudgetOptions,
    Config,
    SeamCredentials,
    load_config,
    load_credentials,
)
from pipeline.sandbox import Faults, build_sandbox, serve_in_thread
from pipeline.seam.client import SeamClient
from tests.generate import make_door, make_level
from tests.paths import SANDBOX_DEVICES

GOOD_CSV = (
    "reservation_id,site_name,door_name,check_in,check_out\n"
    "R1,Harbor View,Room 101,2027-03-12,2027-03-16\n"
)


@pytest.mark.parametrize(
    ("text", "time", "zone"),
    [
        ("07:00:00[America/Los_Angeles]", dt.time(7), "America/Los_Angeles"),
        ("15:30:00-08:00[America/Los_Angeles]", dt.time(15, 30), "America/Los_Angeles"),
        ("09:00:00-05:00", dt.time(9), None),
        ("09:00:00Z", dt.time(9), None),
        ("15:30:00[PST8PDT]", dt.time(15, 30), "PST8PDT"),
        ("7:05", dt.time(7, 5), None),
    ],
)
def test_time_of_day_forms(text, time, zone):
    """Every form Seam writes a user level's time in parses to wall time and zone."""
    assert parse_time_of_day(text) == (time, zone)


def test_prefix_spellings_and_sandbox_file():
    """All three prefix spellings are read; non-Oracode devices are left out."""
    catalog = read_device_file(SANDBOX_DEVICES)
    assert catalog.doors.height == 13
    assert catalog.levels["level_prefix"].null_count() == 0
    assert set(catalog.doors["door_zone"]) == {
        "America/Los_Angeles",
        "America/New_York",
        "Europe/Berlin",
    }
    assert "PST8PDT" in catalog.zones


@pytest.mark.parametrize("field", ["prefix_field", "check_in_time"])
def test_missing_level_field_names_the_device(field):
    """A user level without prefix or times is an error naming the device."""
    level = make_level("Guest", 1, "15:00", "11:00", prefix_field="something_else")
    if field == "check_in_time":
        level = make_level("Guest", 1, "15:00", "11:00")
        del level["check_in_time"]
    door = make_door("door-x", "X", "S", "UTC", [level])
    with pytest.raises(DeviceDataError, match="door-x"):
        DeviceCatalog.from_payload({"devices": [door]}, source="f.json")


def test_bad_time_string_names_device_and_level():
    """An unparseable time of day names the device and the user level."""
    door = make_door("door-y", "Y", "S", "UTC", [make_level("Odd", 1, "3pm", "11:00")])
    with pytest.raises(DeviceDataError, match=r"door-y: user level 'Odd'"):
        DeviceCatalog.from_payload([door], source="f.json")


def test_unknown_zone_rejects_rows_not_the_run(tmp_path):
    """A door whose zone nobody knows gets its rows rejected with unknown_time_zone."""
    devices = tmp_path / "d.json"
    door = make_door("door-z", "Z", "S", "Mars/Olympus", [make_level("G", 1, "15:00", "11:00")])
    devices.write_text(json.dumps({"devices": [door]}))
    source = tmp_path / "r.csv"
    source.write_text(
        "reservation_id,device_id,check_in,check_out\nR1,door-z,2027-03-12,2027-03-16\n"
    )
    out = tmp_path / "p.csv"
    assert main(["plan", str(source), "--devices", str(devices), "--out", str(out)]) == 1
    assert "unknown_time_zone" in out.read_text()


def test_plan_without_key_or_devices_says_which_variable(tmp_path, capsys, monkeypatch):
    """Planning from the API without a key: one line naming SEAM_API_KEY, exit 2."""
    for name in ("SEAM_API_KEY", "SEAM_PERSONAL_ACCESS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    source = tmp_path / "r.csv"
    source.write_text(GOOD_CSV)
    assert main(["plan", str(source)]) == 2
    assert "set SEAM_API_KEY" in capsys.readouterr().err


def test_both_key_kinds_is_an_error(monkeypatch):
    """SEAM_API_KEY and SEAM_PERSONAL_ACCESS_TOKEN together are refused, as the SDKs do."""
    monkeypatch.setenv("SEAM_API_KEY", "seam_test_key")
    monkeypatch.setenv("SEAM_PERSONAL_ACCESS_TOKEN", "seam_at_token")
    with pytest.raises(ConfigError, match="both"):
        SeamCredentials().auth_headers()


def test_personal_access_token_needs_workspace(monkeypatch):
    """A personal access token is sent with the seam-workspace header."""
    monkeypatch.delenv("SEAM_API_KEY", raising=False)
    monkeypatch.setenv("SEAM_PERSONAL_ACCESS_TOKEN", "seam_at_token")
    monkeypatch.delenv("SEAM_WORKSPACE_ID", raising=False)
    with pytest.raises(ConfigError, match="SEAM_WORKSPACE_ID"):
        SeamCredentials().auth_headers()
    monkeypatch.setenv("SEAM_WORKSPACE_ID", "ws_1")
    assert SeamCredentials().auth_headers()["seam-workspace"] == "ws_1"


def test_key_never_shows_in_repr(monkeypatch):
    """The key is a secret: it doesn't appear in the settings' repr."""
    monkeypatch.setenv("SEAM_API_KEY", "seam_supersecret")
    assert "supersecret" not in repr(SeamCredentials())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("api_key = 'seam_x'", "holds an API key"),
        ("[columns]\nRef = 'booking'", "not one of"),
        ("name_template = '{reservation_id}'", "must contain {tag}"),
        ("colums = {}", "colums"),
        ("[columns", "not valid TOML"),
    ],
)
def test_bad_config_files(tmp_path, text, message):
    """A config mistake is named with the file and the key."""
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_a_columns_value_typo_suggests_the_column(tmp_path):
    """A [columns] value that is no pipeline column names them all and the closest one."""
    path = tmp_path / "c.toml"
    path.write_text("[columns]\nGast = 'guest_nmae'\n")
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert raised.value.one_line() == (
        f"config file {path}: columns: 'Gast' maps to 'guest_nmae', which is not one of"
        " ['reservation_id', 'device_id', 'door_name', 'site_name', 'check_in', 'check_out',"
        " 'guest_name', 'user_level', 'check_in_date', 'check_in_time', 'check_out_date',"
        " 'check_out_time'] (did you mean 'guest_name'?)"
    )


# The config's [budgets], then the command line's options → the budgets in force.
OPTION_CASES = [
    ({}, BudgetOptions(), {"per_door": None, "mode": "lifetime", "on_exceeded": "reject-rows"}),
    (
        {"per_door": 5, "mode": "concurrent", "reserve": 1},
        BudgetOptions(),
        {"per_door": 5, "mode": "concurrent", "on_exceeded": "reject-rows", "reserve": 1},
    ),
    (
        {"per_door": 5, "mode": "concurrent", "reserve": 1, "sites": {"A": 2}},
        BudgetOptions(per_door=0),
        {"per_door": 0, "mode": "concurrent", "reserve": 1, "sites": {"A": 2}},
    ),
    (
        {"per_door": 5, "on_exceeded": "abort"},
        BudgetOptions(mode="concurrent", on_exceeded="skip-door"),
        {"per_door": 5, "mode": "concurrent", "on_exceeded": "skip-door"},
    ),
]


@pytest.mark.parametrize(("budgets", "options", "want"), OPTION_CASES)
def test_command_line_options_override_the_config(budgets, options, want):
    """An option given on the command line wins; the config keeps every other setting."""
    config = options.apply(Config(budgets=BudgetConfig.model_validate(budgets)))
    got = config.budgets.model_dump()
    assert {key: got[key] for key in want} == want


def test_negative_budget_per_door_is_refused():
    """--budget-per-door below 0 is a ConfigError."""
    with pytest.raises(ConfigError, match="--budget-per-door"):
        BudgetOptions(per_door=-1).apply(Config())


def test_devices_are_fetched_over_every_page(monkeypatch):
    """/devices/list is followed page by page against the sandbox; reads survive 503s."""
    monkeypatch.setenv("SEAM_API_KEY", "seam_test_key")
    monkeypatch.delenv("SEAM_ENDPOINT", raising=False)
    state, app = build_sandbox(SANDBOX_DEVICES, faults=Faults(fail_before=0.3), seed=9)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)

    async def fetch() -> list[str]:
        async with SeamClient(
            load_credentials(Config(endpoint="http://sandbox")), transport=transport
        ) as client:
            return [device.device_id async for device in client.list_devices(limit=5)]

    ids = anyio.run(fetch)
    statuses = {status for (path, status) in state.requests if path == "/devices/list"}
    assert len(ids) == len(set(ids)) == 13
    assert statuses == {200, 503}
    assert state.requests[("/devices/list", 200)] == 3


def test_read_gives_up_with_the_seam_error(monkeypatch):
    """A read that keeps failing raises SeamError with Seam's type, status and request id."""
    monkeypatch.setenv("SEAM_API_KEY", "seam_test_key")
    _, app = build_sandbox(SANDBOX_DEVICES, faults=Faults(fail_before=1.0))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)

    async def fetch() -> None:
        async with SeamClient(
            load_credentials(Config(endpoint="http://sandbox")), transport=transport
        ) as client:
            await client.read("/devices/get", {"device_id": "x"})

    with pytest.raises(SeamUnavailableError) as caught:
        anyio.run(fetch)
    assert (caught.value.status, caught.value.error_type) == (503, "service_unavailable")
    assert caught.value.request_id.startswith("req_")


@pytest.mark.slow
def test_plan_fetches_devices_from_a_real_sandbox(tmp_path, monkeypatch):
    """`plan` without --devices reads the doors from the Seam API named by SEAM_ENDPOINT."""
    _, app = build_sandbox(SANDBOX_DEVICES)
    source = tmp_path / "r.csv"
    source.write_text(GOOD_CSV)
    out = tmp_path / "plan.csv"
    with serve_in_thread(app) as url:
        monkeypatch.setenv("SEAM_API_KEY", "seam_test_key")
        monkeypatch.setenv("SEAM_ENDPOINT", url)
        code = main(["plan", str(source), "--out", str(out)])
    assert code == 1  # Room 101 at Harbor View has two guest levels: ambiguous without a default
    assert "ambiguous_user_level" in out.read_text()
    assert "Guest 3:30pm-10:30am" in out.read_text()


def test_a_slot_tolerance_over_an_hour_stops_plan_at_start(tmp_path, capsys):
    """[plan] slot_tolerance_minutes = 90: plan exits 2 with one line, before any row is read."""
    config = tmp_path / "pipeline.toml"
    config.write_text("[plan]\nslot_tolerance_minutes = 90\n")
    source = tmp_path / "r.csv"
    source.write_text(GOOD_CSV)
    code = main(["plan", str(source), "--config", str(config), "--devices", str(SANDBOX_DEVICES)])
    assert code == 2
    assert capsys.readouterr().err == (
        f"error: config file {config}: plan.slot_tolerance_minutes: 90 is over 60: Seam rounds a"
        " booking to a user level by at most one hour and refuses creates that need more; give 0"
        " to 60\n"
    )
