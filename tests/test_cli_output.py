"""Tests of the CLI's records and formats, in process (no server, no subprocess)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import sys

import pytest

from kodmobi_async import (
    APIConnectionError,
    ChannelType,
    InvalidSessionIdError,
    NotFoundError,
    PaceState,
    RateLimitError,
    SessionChannel,
)
from kodmobi_async._batch import Outcome
from kodmobi_async._cli import parse_ids
from kodmobi_async._cli_output import (
    CHANNEL_FIELDS,
    CSV_FIELDS,
    ERROR_FIELDS,
    FORMATS,
    RichMissingError,
    Scrubber,
    TableWriter,
    channel_record,
    check_format,
    error_record,
    has_rich,
    pace_log,
    pace_status,
    progress_bar,
    records,
    table_writer,
    write_records,
)

SID = "01HZX3Q8V6W4T1N6B2C3D4E5F6"
OTHER = "01HZX3Q8V6W4T1N6B2C3D4E5F7"
KEY = "sk-LEAKCHECK-5f0e2d9c7b1a"

SMS = SessionChannel(
    name="SMS", type=ChannelType.SMS, is_active=True, timeout=0, image_url=None, link=None
)
TELEGRAM = SessionChannel(
    name="Telegram",
    type=ChannelType.TELEGRAM,
    is_active=False,
    timeout=42,
    image_url="https://kod.mobi/static/channels/telegram.svg",
    link="https://t.me/kodmobi_bot",
    description="not part of the output",
)
NOT_FOUND = NotFoundError(
    "kod.mobi answered 404 ERROR_MESSAGE_NOT_FOUND: Session not found (GET /session/channels)",
    status=404,
    error="Session not found",
    sys_message="ERROR_MESSAGE_NOT_FOUND",
)
OUTCOMES: list[tuple[str | None, Outcome]] = [
    (SID, [SMS, TELEGRAM]),
    (OTHER, NOT_FOUND),
    (None, [SMS]),
]


def render(fmt: str, outcomes: list[tuple[str | None, Outcome]] = OUTCOMES) -> str:
    out = io.StringIO()
    write_records(records(outcomes), fmt, out)
    return out.getvalue()


class TestRecords:
    def test_channel_record_has_the_model_fields_as_plain_json_values(self) -> None:
        record = channel_record(SID, TELEGRAM)

        assert tuple(record) == CHANNEL_FIELDS
        assert record == {
            "session_id": SID,
            "name": "Telegram",
            "type": "telegram",
            "is_active": False,
            "timeout": 42,
            "image_url": "https://kod.mobi/static/channels/telegram.svg",
            "link": "https://t.me/kodmobi_bot",
        }
        assert type(record["type"]) is str

    def test_an_unknown_channel_type_stays_its_string(self) -> None:
        channel = SessionChannel(name="Viber", type="viber", is_active=True, timeout=0)

        assert channel_record(None, channel)["type"] == "viber"

    def test_status_error_record_carries_status_and_sys_message(self) -> None:
        record = error_record(OTHER, NOT_FOUND)

        assert tuple(record) == ERROR_FIELDS
        assert record == {
            "session_id": OTHER,
            "error": str(NOT_FOUND),
            "status": 404,
            "sys_message": "ERROR_MESSAGE_NOT_FOUND",
        }

    @pytest.mark.parametrize(
        "error",
        [
            APIConnectionError("could not connect", method="GET", path="/session/channels"),
            InvalidSessionIdError("a session id must be a ULID", session_id="x"),
        ],
    )
    def test_other_errors_have_null_status_and_sys_message(self, error: Exception) -> None:
        assert isinstance(error, APIConnectionError | InvalidSessionIdError)

        record = error_record("x", error)

        assert record["status"] is None
        assert record["sys_message"] is None
        assert record["error"] == str(error)

    def test_error_texts_pass_through_the_scrubber(self) -> None:
        error = RateLimitError(
            f"kod.mobi answered 429 X_{KEY}: slow down {KEY}",
            status=429,
            sys_message=f"X_{KEY}",
            retry_after=1.0,
        )

        record = error_record(SID, error, Scrubber([KEY]))

        assert record["error"] == "kod.mobi answered 429 X_***: slow down ***"
        assert record["sys_message"] == "X_***"

    def test_records_keep_order_and_skip_sessions_without_channels(self) -> None:
        rows = list(records([(SID, [SMS]), (OTHER, []), (None, NOT_FOUND)]))

        assert [(r["session_id"], "error" in r) for r in rows] == [(SID, False), (None, True)]


class TestScrubber:
    def test_replaces_every_occurrence(self) -> None:
        scrub = Scrubber([KEY, None, ""])

        assert scrub(f"{KEY} and {KEY}") == "*** and ***"

    def test_longest_secret_first(self) -> None:
        scrub = Scrubber(["abcd", "abcdefgh"])

        assert scrub("xabcdefghx abcd") == "x***x ***"

    def test_very_short_values_are_left_alone(self) -> None:
        assert Scrubber(["ab"])("abab") == "abab"


class TestFormats:
    def test_json_is_one_array_one_record_per_line(self) -> None:
        text = render("json")

        data = json.loads(text)
        assert [r.get("name", r.get("error")) for r in data] == [
            "SMS",
            "Telegram",
            str(NOT_FOUND),
            "SMS",
        ]
        assert data[3]["session_id"] is None
        assert len(text.splitlines()) == 2 + len(data)

    def test_json_of_nothing_is_an_empty_array(self) -> None:
        assert render("json", []) == "[]\n"

    def test_json_keeps_non_ascii_text_readable(self) -> None:
        error = NotFoundError("Сессия не найдена", status=404)

        assert "Сессия не найдена" in render("json", [(SID, error)])

    def test_jsonl_is_one_record_per_line(self) -> None:
        lines = render("jsonl").splitlines()

        assert len(lines) == 4
        assert json.loads(lines[2])["status"] == 404

    def test_csv_has_the_fixed_header_and_plain_cells(self) -> None:
        reader = csv.DictReader(io.StringIO(render("csv")))
        rows = list(reader)

        assert tuple(reader.fieldnames or ()) == CSV_FIELDS
        assert rows[0] == {
            "session_id": SID,
            "name": "SMS",
            "type": "sms",
            "is_active": "true",
            "timeout": "0",
            "image_url": "",
            "link": "",
            "error": "",
            "status": "",
            "sys_message": "",
        }
        assert rows[1]["is_active"] == "false"
        assert rows[2]["status"] == "404"
        assert rows[3]["session_id"] == ""

    def test_csv_of_nothing_is_the_header(self) -> None:
        assert render("csv", []) == ",".join(CSV_FIELDS) + "\n"

    def test_table_for_a_pipe_is_plain_and_unwrapped(self) -> None:
        text = render("table")

        assert "\x1b[" not in text
        assert SID in text
        assert "(project)" in text
        assert "42 s" in text
        assert "https://t.me/kodmobi_bot" in text
        assert str(NOT_FOUND) in text
        assert max(len(line) for line in text.splitlines()) > 80

    def test_table_shows_server_text_literally(self) -> None:
        channel = SessionChannel(name="[bold]Max[/bold]", type="max", is_active=True, timeout=0)

        assert "[bold]Max[/bold]" in render("table", [(SID, [channel])])

    def test_table_of_nothing_prints_nothing(self) -> None:
        assert render("table", []) == ""

    def test_unknown_format_is_refused(self) -> None:
        with pytest.raises(ValueError, match="format must be one of"):
            render("yaml")


def many(count: int) -> list[tuple[str | None, Outcome]]:
    """``count`` sessions of two channels each, with distinct ids in order."""
    return [(f"01HZX3Q8V6W4T1N6B2C3D{index:05d}", [SMS, TELEGRAM]) for index in range(count)]


class TestTableWriter:
    def test_a_table_longer_than_a_screen_is_drawn_as_rows_come(self) -> None:
        written: list[str] = []
        writer = TableWriter(written.append, screen_rows=20)
        rows = list(records(many(30)))

        added = 0
        while not written:
            writer.add(rows[added])
            added += 1
        # Out once the header, 13 rows and 6 rules between sessions outgrow 20 lines.
        assert added == 13
        assert "".join(written).count("01HZX3Q8V6W4T1N6B2C3D") == 7
        for row in rows[added:]:
            writer.add(row)
        before_close = "".join(written)
        writer.close()

        assert "".join(written) == before_close  # nothing was held back to the end
        assert before_close.splitlines()[0].startswith("session")
        assert before_close.count("session") == 1  # one header
        shown = [line.split(" ", 1)[0] for line in before_close.splitlines()[2:]]
        assert [s for s in shown if s.startswith("01")] == [sid for sid, _ in many(30)]

    def test_a_table_that_fits_a_screen_is_drawn_whole_at_close(self) -> None:
        written: list[str] = []
        writer = TableWriter(written.append, screen_rows=50)
        for row in records(many(5)):
            writer.add(row)
        assert written == []

        writer.close()

        assert "".join(written) == render("table", many(5))

    def test_a_later_wider_cell_folds_within_its_column(self) -> None:
        written: list[str] = []
        writer = TableWriter(written.append, screen_rows=4)
        wide = SessionChannel(
            name="A much longer channel name", type="sms", is_active=True, timeout=0
        )
        for row in records([*many(3), (OTHER, [wide])]):
            writer.add(row)
        writer.close()

        lines = "".join(written).splitlines()
        # Every line has its column separators at the same places.
        bars = {tuple(i for i, c in enumerate(line) if c in "│┃╇┼") for line in lines}
        assert len(bars) == 1
        last_row = lines[next(i for i, line in enumerate(lines) if line.startswith(OTHER)) :]
        assert len(last_row) > 1
        assert "".join(line.split("│")[1].strip() for line in last_row) == wide.name

    def test_control_characters_from_the_server_are_shown_not_obeyed(self) -> None:
        channel = SessionChannel(name="Max\x1b[2J\x07", type="max", is_active=True, timeout=0)

        text = render("table", [(SID, [channel])])

        assert "\x1b" not in text
        assert "\x07" not in text
        assert "Max\\x1b[2J\\x07" in text

    def test_colours_on_a_terminal_follow_rich(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("FORCE_COLOR", "1")
        monkeypatch.delenv("NO_COLOR", raising=False)
        out = io.StringIO()
        writer = table_writer(out)
        for row in records(OUTCOMES):
            writer.add(row)
        writer.close()

        text = out.getvalue()
        assert "\x1b[1msession\x1b[0m" in text
        assert "\x1b[31m" + str(NOT_FOUND) + "\x1b[0m" in text
        assert "\x1b[32myes\x1b[0m" in text

    def test_keys_are_scrubbed_from_the_table(self) -> None:
        leaked = NotFoundError(f"echoed {KEY}", status=404, error="x", sys_message="E")
        out = io.StringIO()

        write_records(records([(SID, leaked)], Scrubber([KEY])), "table", out)

        assert KEY not in out.getvalue()
        assert "echoed ***" in out.getvalue()


class TestProgressBar:
    def test_disabled_gives_no_callback(self) -> None:
        with progress_bar(10, "looking up", enabled=False) as on_progress:
            assert on_progress is None

    def test_enabled_accepts_progress_without_a_terminal(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        with progress_bar(2, "looking up", enabled=True) as on_progress:
            assert on_progress is not None
            on_progress(1, 2)
            on_progress(2, 2)

        assert capsys.readouterr().out == ""

    def test_shows_the_status_under_the_bar(self, capsys: pytest.CaptureFixture[str]) -> None:
        with progress_bar(
            2, "looking up", enabled=True, transient=False, status=lambda: "rate-limited: 48"
        ) as on_progress:
            assert on_progress is not None
            on_progress(2, 2)

        # Off a terminal rich draws only the last frame, on stderr.
        captured = capsys.readouterr()
        assert captured.out == ""
        assert "2/2" in captured.err
        assert "rate-limited: 48" in captured.err


def pace(
    rate: float | None = None, ceiling: float | None = None, paused_for: float = 0.0
) -> PaceState:
    return PaceState(rate=rate, ceiling=ceiling, paused_for=paused_for)


class TestPaceStatus:
    def test_says_nothing_while_nothing_holds_the_client_back(self) -> None:
        assert pace_status(pace()) == ""

    def test_names_the_pace_kod_mobis_429s_set(self) -> None:
        assert pace_status(pace(48.4)) == "rate-limited: pacing at 48 req/s"
        assert pace_status(pace(1234.0)) == "rate-limited: pacing at 1,234 req/s"
        assert pace_status(pace(2.5)) == "rate-limited: pacing at 2.5 req/s"

    def test_an_explicit_limit_is_not_called_rate_limiting(self) -> None:
        assert pace_status(pace(50.0, ceiling=50.0)) == "pacing at 50 req/s (the set limit)"

    def test_a_pace_cut_below_the_set_limit_is_rate_limiting(self) -> None:
        assert pace_status(pace(45.0, ceiling=50.0)) == "rate-limited: pacing at 45 req/s"

    def test_a_pause_wins_and_counts_whole_seconds_up(self) -> None:
        state = pace(48.0, paused_for=2.1)

        assert pace_status(state) == "paused by kod.mobi, resuming in 3 s"
        assert pace_status(pace(paused_for=0.2)) == "paused by kod.mobi, resuming in 1 s"


class TestPaceLog:
    async def test_logs_each_change_of_kind_once(self, caplog: pytest.LogCaptureFixture) -> None:
        states = [
            pace(),
            pace(80.0),
            pace(72.0),  # a new rate, the same kind: not logged again
            pace(72.0, paused_for=1.5),
            pace(90.0),
            pace(),
        ]
        seen = asyncio.Event()
        index = 0

        def read() -> PaceState:
            nonlocal index
            state = states[min(index, len(states) - 1)]
            index += 1
            if index >= len(states):
                seen.set()
            return state

        logger = logging.getLogger("kodmobi_async.cli")
        with caplog.at_level(logging.INFO, logger="kodmobi_async.cli"):
            async with pace_log(read, logger, every=0):
                await seen.wait()

        assert [record.getMessage() for record in caplog.records] == [
            "rate-limited: pacing at 80 req/s",
            "paused by kod.mobi, resuming in 2 s",
            "rate-limited: pacing at 90 req/s",
            "no longer held back by kod.mobi",
        ]

    async def test_does_not_watch_when_info_is_off(self) -> None:
        logger = logging.getLogger("kodmobi_async.cli.quiet")
        logger.setLevel(logging.WARNING)

        def read() -> PaceState:
            raise AssertionError("read while INFO is off")  # pragma: no cover

        async with pace_log(read, logger, every=0):
            await asyncio.sleep(0)
            await asyncio.sleep(0)


class TestWithoutRich:
    @pytest.fixture(autouse=True)
    def _block_rich(self, monkeypatch: pytest.MonkeyPatch) -> None:
        # What an environment without the cli extra looks like to an import.
        monkeypatch.setitem(sys.modules, "rich", None)

    def test_is_detected(self) -> None:
        assert has_rich() is False

    @pytest.mark.parametrize("fmt", [fmt for fmt in FORMATS if fmt != "table"])
    def test_machine_formats_are_written(self, fmt: str) -> None:
        check_format(fmt)
        out = io.StringIO()

        write_records(records([(SID, [SMS])]), fmt, out)

        assert SID in out.getvalue()

    def test_the_table_is_refused_naming_the_extra_and_the_other_formats(self) -> None:
        message = (
            "--format table (the default) needs the rich package: install kodmobi-async[cli] "
            "(pip install 'kodmobi-async[cli]'); or use --format json, jsonl or csv, "
            "which need nothing more"
        )
        with pytest.raises(RichMissingError) as checked:
            check_format("table")
        with pytest.raises(RichMissingError) as written:
            write_records(records([(SID, [SMS])]), "table", io.StringIO())

        assert str(checked.value) == message
        assert str(written.value) == message


class TestParseIds:
    def test_skips_blank_lines_and_comments(self) -> None:
        lines = ["# header", "", f"  {SID}  ", f"{OTHER}  # the retry", "   ", "#"]

        assert parse_ids(lines) == [SID, OTHER]

    def test_keeps_duplicates_and_order(self) -> None:
        assert parse_ids([OTHER, SID, OTHER]) == [OTHER, SID, OTHER]

    def test_reads_lines_with_newlines(self) -> None:
        assert parse_ids(io.StringIO(f"{SID}\r\n{OTHER}\n")) == [SID, OTHER]
