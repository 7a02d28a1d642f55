"""The one subprocess function: argv only, text, explicit check, one-line errors."""

import logging
import shlex
import subprocess

import pytest

from adapters.nixstore import process
from adapters.nixstore.host import LOCAL
from adapters.nixstore.ssh import Ssh
from solver.errors import ConnectionLostError, NixError


def test_runs_argv_and_captures_text():
    result = process.run(
        ["sh", "-c", 'printf "%s\\n" "$1"; echo oops >&2', "sh", "a b"], check=True
    )
    assert result.returncode == 0
    assert result.stdout == "a b\n"
    assert result.stderr == "oops\n"


def test_argv_is_not_a_shell_string():
    # `;` and `$` reach the program as they are: no shell in between.
    result = process.run(["echo", "x; echo $HOME"], check=True)
    assert result.stdout == "x; echo $HOME\n"


def test_check_false_returns_failures():
    result = process.run(["sh", "-c", "echo bad >&2; exit 3"], check=False)
    assert result.returncode == 3
    assert result.stderr == "bad\n"


def test_check_true_raises_one_line_naming_command_and_error():
    script = (
        "echo 'warning: you did not specify --add-root' >&2;"
        "echo \"error: path '/nix/store/x.drv' is not valid\" >&2;"
        "echo \"(use '--show-trace' to show detailed location information)\" >&2;"
        "exit 1"
    )
    argv = ["sh", "-c", script]
    with pytest.raises(NixError) as caught:
        process.run(argv, check=True)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(shlex.join(argv))
    assert message.endswith("failed with exit code 1: path '/nix/store/x.drv' is not valid")


def test_killed_by_a_signal():
    with pytest.raises(NixError, match="was killed by signal 9"):
        process.run(["sh", "-c", "kill -9 $$"], check=True)


def test_failure_without_stderr():
    with pytest.raises(NixError) as caught:
        process.run(["false"], check=True)
    assert str(caught.value) == "false failed with exit code 1"


@pytest.mark.parametrize(
    ("stderr", "line"),
    [
        ("", ""),
        ("\n\n", ""),
        ("boom\n", "boom"),
        ("error: first\nerror: second\n", "second"),
        (
            "error: builder for '/nix/store/a.drv' failed with exit code 1;\n"
            "       last 1 log lines:\n       > nope\n"
            "       For full logs, run 'nix log /nix/store/a.drv'.\n",
            "builder for '/nix/store/a.drv' failed with exit code 1;",
        ),
        ("\x1b[31;1merror:\x1b[0m colourful\n", "colourful"),
        (
            "some context\n(use '--show-trace' to show detailed location information)\n",
            "some context",
        ),
        ("warning: only a warning\n", "warning: only a warning"),
        ("warning: a warning\nthe real problem\n", "the real problem"),
    ],
)
def test_last_error_line(stderr, line):
    assert process.last_error_line(stderr) == line


# What real Nix printed for a store URL it cannot parse and a refused cache, each version
# in its words: 2.26 and 2.34 add a hint line after the error, and 2.34 its retries as
# warnings of their own ("attempt 4/5") where 2.8 said "warning: error: ...".
CACHE = "http://127.0.0.1:9/nix-cache-info"


@pytest.mark.parametrize(
    ("stderr", "line"),
    [
        (  # Nix 2.8.0
            "error: don't know how to open Nix store 'not a url'\n",
            "don't know how to open Nix store 'not a url'",
        ),
        (  # Nix 2.26.3 and 2.34.8
            "error: Cannot parse Nix store 'not a url'\nTry 'nix --help' for more information.\n",
            "Cannot parse Nix store 'not a url'",
        ),
        (  # Nix 2.8.0
            f"warning: error: unable to download '{CACHE}': Couldn't connect to server (7); "
            "retrying in 2099 ms\n"
            f"error: unable to download '{CACHE}': Couldn't connect to server (7)\n",
            f"unable to download '{CACHE}': Couldn't connect to server (7)",
        ),
        (  # Nix 2.34.8
            f"warning: unable to download '{CACHE}': Could not connect to server (7) Failed to "
            "connect to 127.0.0.1:9 after 0 ms: Could not connect to server; retrying in 2034 "
            "ms (attempt 4/5)\n"
            f"error: unable to download '{CACHE}': Could not connect to server (7) Failed to "
            "connect to 127.0.0.1:9 after 1 ms: Could not connect to server\n",
            f"unable to download '{CACHE}': Could not connect to server (7) Failed to connect "
            "to 127.0.0.1:9 after 1 ms: Could not connect to server",
        ),
    ],
    ids=["2.8-store-url", "2.26-2.34-store-url", "2.8-refused", "2.34-refused"],
)
def test_last_error_line_of_each_nix_version(stderr, line):
    assert process.last_error_line(stderr) == line


def test_long_commands_are_shortened_in_errors():
    argv = ["sh", "-c", "exit 2", *[f"/nix/store/{i:032d}-p" for i in range(100)]]
    with pytest.raises(NixError) as caught:
        process.run(argv, check=True)
    message = str(caught.value)
    assert "(95 more arguments)" in message
    assert len(message) < 400


def test_missing_nix_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(NixError) as caught:
        process.run(["nix", "path-info"], check=True)
    assert str(caught.value) == "nix not found: install Nix (apt-get install nix-bin)"
    with pytest.raises(NixError, match="nix-store not found: install Nix"):
        process.run(["nix-store", "--gc"], check=False)


def test_missing_other_program():
    with pytest.raises(NixError, match="no-such-program-here not found"):
        process.run(["no-such-program-here"], check=False)


def test_not_executable(tmp_path):
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o644)
    with pytest.raises(NixError, match="cannot be executed"):
        process.run([str(script)], check=False)


def test_env_adds_to_the_inherited_environment(monkeypatch):
    monkeypatch.setenv("NIX_STORE_DIR", "/tmp/inherited-store")
    result = process.run(
        ["sh", "-c", 'echo "$NIX_STORE_DIR $EXTRA"'], check=True, env={"EXTRA": "added"}
    )
    assert result.stdout == "/tmp/inherited-store added\n"
    assert process.run(["sh", "-c", 'echo "$NIX_STORE_DIR"'], check=True).stdout == (
        "/tmp/inherited-store\n"
    )


def test_input_goes_to_stdin():
    assert process.run(["cat"], check=True, input="paths\n").stdout == "paths\n"


def test_timeout():
    with pytest.raises(NixError, match=r"sleep 5 timed out after 0\.2 s"):
        process.run(["sleep", "5"], check=True, timeout=0.2)


def test_undecodable_output_does_not_crash():
    result = process.run(["printf", "\\377ok"], check=True)
    assert result.stdout.endswith("ok")


def test_logs_the_command_at_debug(caplog):
    with caplog.at_level(logging.DEBUG, logger="adapters.nixstore.process"):
        process.run(["echo", "two words"], check=True)
    assert "running echo 'two words'" in caplog.text


def test_empty_argv():
    with pytest.raises(ValueError, match="needs a command"):
        process.run([], check=True)


def test_logged_builds_pass_their_log_line_by_line():
    seen = []
    script = "echo out; echo one >&2; echo two >&2; exit 3"
    result = process.run(["sh", "-c", script], check=False, log=seen.append)
    # A call without a log stays quiet.
    process.run(["sh", "-c", "echo hidden >&2"], check=False)
    assert seen == ["one", "two"]
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "one\ntwo\n")
    with pytest.raises(NixError, match="exit code 3: two"):
        process.run(["sh", "-c", script], check=True, log=seen.append)


def test_without_a_log_calls_just_capture():
    result = process.run(["sh", "-c", "echo e >&2"], check=False)
    assert result.stderr == "e\n"


def test_a_full_disk_is_named_over_nixs_last_line():
    stderr = (
        "copying path '/nix/store/abc-pkg4-2.4'...\n"
        "error: writing to file: No space left on device\n"
        "error: path '/nix/store/abc-pkg4-2.4' does not exist and cannot be created\n"
    )
    assert process.last_error_line(stderr) == "writing to file: No space left on device"


def test_internal_json_logs_read_as_text():
    """`--log-format internal-json` (as nom needs it): messages and build-log lines are
    the text; activity events are not."""
    stderr = "\n".join(
        [
            '@nix {"action":"start","id":1,"level":3,"text":"building x","type":105}',
            '@nix {"action":"result","fields":["cp: No space left on device"],"id":1,"type":101}',
            '@nix {"action":"result","fields":[0,1,0,0],"id":2,"type":105}',
            '@nix {"action":"msg","level":0,"msg":"\\u001b[31;1merror:\\u001b[0m builder for '
            "'/nix/store/abc-x.drv' failed with exit code 1\"}",
            "@nix not json",
            "plain line",
        ]
    )
    assert process.plain_lines(stderr) == [
        "cp: No space left on device",
        "error: builder for '/nix/store/abc-x.drv' failed with exit code 1",
        "plain line",
    ]
    assert process.last_error_line(stderr) == "cp: No space left on device"


def test_a_monitor_gets_every_line_and_a_dead_one_is_ignored(tmp_path):
    seen = tmp_path / "seen"
    with process.monitored(["sh", "-c", f"cat > {seen}"]) as sink:
        sink("one")
        sink("two")
    assert seen.read_text() == "one\ntwo\n"
    # A monitor that exits at once: the lines after it are dropped, nothing raises.
    with process.monitored(["true"]) as sink:
        for i in range(10_000):
            sink(f"line {i}")


def test_a_remote_command_is_one_shell_command_with_its_environment(monkeypatch):
    """On an `Ssh` host, argv and env become one quoted command for ssh; errors name the
    host and the command, not the ssh options; ssh's 255 is a lost connection."""
    seen = {}

    def fake_run(argv, **kwargs):
        seen["argv"], seen["env"] = argv, kwargs.get("env")
        return subprocess.CompletedProcess(argv, 255, "", "ssh: connect to host h: refused\n")

    monkeypatch.setattr(subprocess, "run", fake_run)
    host = Ssh("root@h", options=("-p", "2222"))
    result = host.run(["nix-store", "--gc"], check=False, env={"A": "x y"})
    assert result.returncode == 255
    assert seen["argv"][:3] == ["ssh", "-p", "2222"]
    assert seen["argv"][-3:] == ["root@h", "--", "env 'A=x y' nix-store --gc"]
    assert seen["env"] is None
    with pytest.raises(ConnectionLostError) as e:
        host.run(["nix-store", "--gc"], check=True)
    assert str(e.value) == (
        "root@h: nix-store --gc failed with exit code 255: ssh: connect to host h: refused"
    )
    # The local host runs it here.
    assert LOCAL.run(["nix-store", "--gc"], check=False).args == ["nix-store", "--gc"]
