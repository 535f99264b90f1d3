"""The command line answers and the demo's first step runs end to end."""


def test_cli_help_lists_commands(cli):
    code, out, _ = cli("--help")
    assert code == 0
    for command in ("measure", "phantom", "demo"):
        assert command in out
