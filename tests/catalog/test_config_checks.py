"""The config's names checked against the doors at start, and unknown config keys."""

from __future__ import annotations

import logging

import pytest

from pipeline.catalog.checks import check_config
from pipeline.cli import main
from pipeline.common.errors import ConfigError
from pipeline.common.settings import Config, load_config
from tests.paths import ROOT, SANDBOX_DEVICES

SAMPLE = ROOT / "inputs" / "reservations-sample.csv"
SAMPLE_CONFIG = ROOT / "inputs" / "pipeline.toml"

TYPOS = {
    "doors": {"aliases": {"Unit 101": "Room 101", "Unit 9": "Room 1O1"}},
    "user_levels": {
        "sites": {"Harbour View": "Guest 3:30pm-10:30am", "Harbor View": "Guest 3:30pm-10:30"},
        "doors": {
            "Zimmer 3": "Gast 15-11",
            "Zimmer 9": "Gast 15-11 Uhr",
            "Room 101": "Guest 4pm-11am",
        },
    },
}
WARNINGS = [
    '[doors.aliases] "Unit 9" = "Room 1O1" matches no door name or device_id; did you mean'
    ' "Room 101"? (see oracode-provision doors)',
    '[user_levels.doors] "Zimmer 3" = "Gast 15-11" is not a user level of door Alpenhof /'
    ' Zimmer 3; did you mean "Gast 15-11 Uhr"? (see oracode-provision doors)',
    '[user_levels.doors] "Zimmer 9" matches no door name or device_id; did you mean "Zimmer 3",'
    ' "Zimmer 2" or "Zimmer 1"? (see oracode-provision doors)',
    '[user_levels.doors] "Room 101" = "Guest 4pm-11am" is not a user level of 1 of its 2 doors'
    ' (Harbor View / Room 101); did you mean "Guest 3:30pm-10:30am"? (see oracode-provision'
    " doors)",
    '[user_levels.sites] "Harbour View" matches no site; did you mean "Harbor View"? (see'
    " oracode-provision doors)",
    # Room 101 has a default of its own, which wins over its site's.
    '[user_levels.sites] "Harbor View" = "Guest 3:30pm-10:30" is not a user level of 4 of its 4'
    ' doors (Harbor Lobby, Room 102, Room 103, Room 104); did you mean "Guest 3:30pm-10:30am"?'
    " (see oracode-provision doors)",
]


def test_config_names_that_match_nothing_are_one_warning_each(sandbox_catalog, caplog):
    """Each alias target, door, site or default level the doors lack is one logged line."""
    with caplog.at_level(logging.WARNING, logger="pipeline"):
        assert check_config(Config.model_validate(TYPOS), sandbox_catalog) == WARNINGS
    assert [record.getMessage() for record in caplog.records] == WARNINGS


def test_a_config_whose_names_all_match_says_nothing(sandbox_catalog):
    """The sample's config (sites, a door and their levels) raises no warning."""
    config = load_config(SAMPLE_CONFIG)
    assert check_config(config, sandbox_catalog) == []


def test_plan_warns_once_at_start_not_per_row(tmp_path, capsys):
    """plan prints each warning once, as a warning: line on stderr, however many rows."""
    config = tmp_path / "pipeline.toml"
    typo = '[user_levels.sites]\n"Harbour View" = "Guest 3:30pm-10:30am"\n'
    config.write_text(SAMPLE_CONFIG.read_text().replace("[user_levels.sites]\n", typo))
    main(
        [
            "plan",
            str(SAMPLE),
            "--config",
            str(config),
            "--devices",
            str(SANDBOX_DEVICES),
            "--out",
            str(tmp_path / "plan.csv"),
        ]
    )
    err = capsys.readouterr().err.splitlines()
    assert err == [
        'warning: [user_levels.sites] "Harbour View" matches no site; did you mean "Harbor'
        ' View"? (see oracode-provision doors)'
    ]


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            'endpont = "https://example.com"',
            "unknown key endpont at the top level (known: input, doors, plan, columns, sources,"
            " user_levels, budgets, pins, changes, nightly, name_template, endpoint) (did you"
            " mean endpoint?)",
        ),
        (
            "[budgets]\nper_dor = 3",
            "unknown key per_dor in [budgets] (known: mode, per_door, reserve, on_exceeded,"
            " sites, doors) (did you mean per_door?)",
        ),
        (
            '[doors.alias]\n"Unit 101" = "Room 101"',
            "unknown key alias in [doors] (known: aliases, also) (did you mean aliases?)",
        ),
        (
            '[input]\nlocale = "de"',
            "unknown key locale in [input] (known: encoding,"
            " date_format, time_format, sheet, header_row, skip)",
        ),
    ],
)
def test_unknown_keys_are_named_with_the_known_ones(tmp_path, toml, message):
    """pydantic's "Extra inputs" error names the key, its section and the known keys."""
    path = tmp_path / "pipeline.toml"
    path.write_text(toml + "\n")
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert raised.value.exit_code == 2
    assert raised.value.one_line() == f"config file {path}: {message}"


def test_doors_also_names_that_match_nothing_are_warned_at_start(sandbox_catalog):
    """A [doors.also] key that is no door, alias, device_id or site, and a listed door that is
    no door or alias, are one warning each; names that match say nothing."""
    config = Config.model_validate(
        {
            "doors": {
                "aliases": {"Lobby": "Harbor Lobby"},
                "also": {
                    "Harbour View": ["Harbor Lobby"],
                    "Harbor View": ["Lobby", "Pool"],
                    "room 101": ["harbor lobby"],
                },
            }
        }
    )
    assert check_config(config, sandbox_catalog) == [
        '[doors.also] "Harbour View" matches no door, alias, device_id or site; did you mean'
        ' "Harbor View"? (see oracode-provision doors)',
        '[doors.also] "Harbor View" lists "Pool", which matches no door name, alias or'
        " device_id (see oracode-provision doors)",
    ]
