"""Every `snakemake ...` command the README (and the docs/ pages it links) shows works as written,
parsed from the text so the two cannot drift: Snakemake's own argument parser accepts it, the
files it names exist, every rule it names exists, and a dry run on the demo default config
resolves every target it names. Every docs/ page is linked from the README, every link resolves."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = [README, *sorted((ROOT / "docs").glob("*.md"))]

# Stand-ins for the README's <placeholders>: the value a user would type. A new placeholder in a
# README command must be added here (the test names it), so every command stays checkable.
PLACEHOLDERS = {
    "<product>": "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_26_57",
    "<real-archive config>": "config/examples/earth-search.yaml",
    "<your site profile>": "workflow/profiles/local",
    "<n>": "1",
}
# Options whose values are rule names (not files).
RULE_OPTIONS = ("until", "omit_from", "cache", "forcerun", "allowed_rules")


def _code_texts(markdown: str) -> list[str]:
    """The text of every fenced code block line and every inline code span."""
    texts, prose, fenced = [], [], False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        (texts if fenced else prose).append(line)
    texts += re.findall(r"`([^`\n]+)`", "\n".join(prose))
    return texts


def readme_commands(docs: list[Path] = DOCS) -> list[str]:
    """Every snakemake invocation in the README and the docs pages, as a user would type it."""
    commands = []
    for text in (text for doc in docs for text in _code_texts(doc.read_text())):
        text = text.split(" #", 1)[0]  # a trailing shell comment
        for part in re.split(r"&&|\|\||;|\|", text):
            words = part.strip().split()
            while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", words[0]):  # VAR=value prefix
                words.pop(0)
            if words and words[0] == "snakemake":
                commands.append(" ".join(words).split(" >", 1)[0].strip())
    return commands


def _argv(command: str) -> list[str]:
    for placeholder in re.findall(r"<[^>]+>", command):
        assert placeholder in PLACEHOLDERS, f"README command {command!r}: no stand-in for {placeholder}"
        command = command.replace(placeholder, PLACEHOLDERS[placeholder])
    return shlex.split(command)[1:]


def _parse(command: str):
    from snakemake.cli import get_argument_parser

    parser = get_argument_parser()
    try:
        return parser.parse_args(_argv(command))
    except SystemExit as exc:  # argparse reports the bad option on stderr
        raise AssertionError(f"README command {command!r} is not a valid snakemake command") from exc


def _workflow_rules() -> set[str]:
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--list-rules"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # One rule per unindented line, its docstring (if any) after it in parentheses.
    return {m.group(1) for line in proc.stdout.splitlines() if (m := re.match(r"(\w+)(?:\s|$)", line))}


def test_readme_commands_are_found():
    commands = readme_commands([README])
    # The README's headline commands, as the issue quotes them.
    assert "snakemake --cores 2" in commands
    assert "snakemake --cores 2 cben timeseries ssl4eo planetcr" in commands
    assert len(commands) >= 10, commands
    assert "snakemake --cores 2 ssl4eo" in readme_commands()  # docs/ssl4eo.md


def test_readme_links_every_docs_page_and_every_link_resolves():
    readme = README.read_text()
    for page in DOCS[1:]:
        assert f"](docs/{page.name})" in readme, f"README does not link docs/{page.name}"
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", doc.read_text()):
            if not re.match(r"[a-z]+://", target):
                assert (doc.parent / target).exists(), f"{doc.name}: broken link {target}"


def test_every_readme_command_parses_and_names_existing_files_and_rules():
    rules = _workflow_rules()
    assert {"all", "cben", "timeseries", "ssl4eo", "planetcr"} <= rules
    for command in readme_commands():
        args = _parse(command)
        for path in [*(args.configfile or []), *([args.snakefile] if args.snakefile else [])]:
            assert (ROOT / path).is_file(), f"README command {command!r}: {path} does not exist"
        for profile in [args.workflow_profile, *(args.profile or [])]:
            if profile and profile != "none":
                assert (ROOT / profile).is_dir() or (ROOT / "profiles" / profile).is_dir(), (
                    f"README command {command!r}: no profile {profile}")
        for option in RULE_OPTIONS:
            for name in getattr(args, option, None) or []:
                if "/" not in name:  # a file is a target of --forcerun, not a rule name
                    assert name in rules, f"README command {command!r}: --{option} names no rule {name!r}"
        for target in args.targets or []:
            assert "/" in target or target in rules, f"README command {command!r}: no rule {target!r}"


def test_dry_run_resolves_every_readme_target(tmp_path):
    """`snakemake -n` with the demo default config on every target the README names (in a scratch
    working directory: nothing is built)."""
    targets = {t for command in readme_commands() for t in (_parse(command).targets or [])}
    # ... and the first column of the README's table of targets.
    section = README.read_text().split("## What the workflow does", 1)[1].split("\n## ", 1)[0]
    table_targets = set(re.findall(r"^\| `(\w+)`", section, flags=re.M))
    assert {"cben", "timeseries", "ssl4eo", "planetcr", "cloud_removal"} <= table_targets
    targets = sorted((targets | table_targets) - {"all"})
    assert {"cben", "timeseries", "ssl4eo", "planetcr"} <= set(targets)
    cmd = [sys.executable, "-m", "snakemake", "-n", "-s", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
           "all", *targets]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{out[-6000:]}"
    counts = dict(re.findall(r"^(\w+)\s+(\d+)\s*$", out.split("Job stats:")[-1], flags=re.M))
    for target in targets + ["all"]:
        assert counts.get(target) == "1", f"target {target!r} not in the dry run's jobs: {counts}"
    assert not list(tmp_path.glob("results")) and not list(tmp_path.glob("resources"))
