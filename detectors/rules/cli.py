"""``v6sentry rules ...``: render, check, push a pack; print the coverage matrix.

Owns the ``rules`` sub-commands' arguments, messages and exit codes (0 fine,
1 the pack has problems, 2 usage or input error). Rendering, checking and the
matrix live in the sibling modules, pushing to Elasticsearch in
``detectors.rules.push``; this only wires them to the command line.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import yaml

from detectors.detections import discover
from detectors.es import RULES_INDEX
from detectors.es.connect import ConfigError, add_connection_arguments, client_from_args
from detectors.policy import PolicyError, empty_policy
from detectors.rules.context import build_context
from detectors.rules.matrix import markdown, rows, totals
from detectors.spec import SpecError

EXIT_OK, EXIT_PROBLEMS, EXIT_ERROR = 0, 1, 2

EPILOG = """\
examples:
  v6sentry rules render --policy pcaps/policy.yaml -o /tmp/v6sentry-pack
  v6sentry rules check /tmp/v6sentry-pack
  v6sentry rules matrix
  v6sentry rules push --es http://127.0.0.1:9200 --kibana /tmp/v6sentry-kibana.ndjson

render writes DIR/suricata/v6sentry.rules, DIR/suricata/v6sentry-vars.yaml (for
suricata.yaml's include:), DIR/suricata/v6sentry-classification.config (the rules'
classtypes: alert.category is the v6sentry category, severity v6sentry's; suricata-update
merges it, else append it to the site's classification.config),
DIR/sigma/{rules,queries}/... and DIR/v6sentry-pack.sha256,
the manifest of what it wrote (sha256sum format). DIR must be new, empty, or a pack
render wrote: rendering again removes the files the old pack had and the new one has
not, and any file not in the manifest makes render refuse the directory untouched.
check reports files not in the manifest (stale or foreign), listed files missing or
changed, and every file that is empty or not valid YAML. Without --policy the pack
has no router or dark-prefix variables and leaves out the rules that need them (each
named in a comment in the rules file).
"""


def add_parser(sub: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    rules = sub.add_parser(
        "rules",
        help="render, check and compare the Suricata and Sigma rule packs",
        description="Suricata and Sigma rule packs rendered from the detection specs "
        "and a site policy.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = rules.add_subparsers(
        dest="rules_command", metavar="ACTION", required=True, parser_class=parser_class
    )
    render = actions.add_parser(
        "render",
        help="render a pack for a site policy into a directory",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    render.add_argument("--policy", metavar="FILE", help="site policy YAML (default: none)")
    render.add_argument(
        "-o",
        "--output",
        metavar="DIR",
        required=True,
        help="pack directory: new, empty, or a pack render wrote (its stale files are removed)",
    )
    check = actions.add_parser(
        "check",
        help="validate a rendered pack (manifest, structure, Sigma validators, suricata -T)",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("pack", metavar="DIR", help="directory written by `rules render`")
    check.add_argument(
        "--no-suricata",
        action="store_true",
        help="skip loading the rules into the suricata binary (suricata -T)",
    )
    push = actions.add_parser(
        "push",
        help="store the Sigma rules' Elasticsearch queries in a rules index (and Kibana NDJSON)",
        description="One document per converted Sigma rule (_id = the Sigma id, so pushing "
        "again replaces it; stored v6sentry rules no longer in the pack are deleted). "
        "Default: the committed pack (rendered for the packaged example policy, the "
        "same as pcaps/policy.yaml); --policy renders one for a site, --pack reads a "
        "directory written by `rules render`.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    push.add_argument("--es", metavar="URL", help="Elasticsearch URL (omit to write --kibana only)")
    add_connection_arguments(push)
    source = push.add_mutually_exclusive_group()
    source.add_argument("--pack", metavar="DIR", help="a pack directory from `rules render`")
    source.add_argument("--policy", metavar="FILE", help="render the pack for this policy")
    push.add_argument("--index", metavar="NAME", default=RULES_INDEX, help=f"default {RULES_INDEX}")
    push.add_argument(
        "--kibana", metavar="FILE", help="also write Kibana detection-rules import NDJSON"
    )
    matrix = actions.add_parser("matrix", help="print the detection x engine coverage matrix")
    matrix.add_argument("--format", choices=("markdown", "json"), default="markdown")


def _fail(message: str) -> int:
    print(f"v6sentry: error: {message}", file=sys.stderr)
    return EXIT_ERROR


def _render(args: argparse.Namespace) -> int:
    # pySigma loads slowly and Jinja2 is the [siem] extra: `v6sentry` imports this module
    # for every command (the parser), so the renderer is imported only here.
    from detectors.rules import suricata
    from detectors.rules.pack import PackDirError, load, render_pack, write_pack_dir
    from detectors.rules.render import RenderError

    try:
        pack = render_pack(load(args.policy))
    except (PolicyError, RenderError, SpecError) as exc:
        return _fail(str(exc))
    out = Path(args.output)
    try:
        removed = write_pack_dir(pack, out)
    except PackDirError as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"{out}: cannot write the pack: {exc.strerror or exc}")
    for rel in removed:
        # Named one by one: nothing the old pack had disappears without a word.
        print(f"v6sentry: removed {out / rel} (not in the new pack)", file=sys.stderr)
    rules = suricata.parse_rules(pack.files[f"suricata/{suricata.RULES_FILE}"])
    omitted = suricata.omitted_sids(pack.files[f"suricata/{suricata.RULES_FILE}"])
    n_sigma = sum(1 for rel in pack.files if rel.startswith("sigma/rules/"))
    print(
        f"v6sentry: wrote {out}: {len(rules)} Suricata rules"
        + (f" ({len(omitted)} left out for this policy, see the rules file)" if omitted else "")
        + f", {n_sigma} Sigma rules; policy {pack.context['policy']['source']}",
        file=sys.stderr,
    )
    return EXIT_OK


def read_pack(root: Path, problems: list[str] | None = None) -> dict[str, str]:
    """Every file of a pack directory, by path relative to it.

    With ``problems``, a file that is not UTF-8 text is reported there and left out;
    without, it raises ``UnicodeDecodeError``.
    """
    out: dict[str, str] = {}
    for part in ("suricata", "sigma"):
        for p in sorted((root / part).rglob("*")):
            if not p.is_file():
                continue
            try:
                out[p.relative_to(root).as_posix()] = p.read_text(encoding="utf-8")
            except UnicodeDecodeError as exc:
                if problems is None:
                    raise
                problems.append(f"{p}: not UTF-8 text (byte {exc.start})")
    return out


def _suricata_problems(root: Path, files: dict[str, str]) -> list[str]:
    """Problems with the Suricata part; stops at the first that leaves nothing to check."""
    from detectors.rules import suricata
    from detectors.rules.render import RenderError

    rules_rel = f"suricata/{suricata.RULES_FILE}"
    vars_rel = f"suricata/{suricata.VARS_FILE}"
    class_rel = f"suricata/{suricata.CLASSIFICATION_FILE}"
    missing = [rel for rel in (rules_rel, vars_rel, class_rel) if rel not in files]
    if missing:
        return [f"{root / rel}: missing" for rel in missing]
    try:
        doc = yaml.safe_load(files[vars_rel])
    except yaml.YAMLError as exc:
        return [f"{root / vars_rel}: not YAML: {exc}"]
    if not isinstance(doc, dict):
        return [f"{root / vars_rel}: empty or not a mapping of vars.* keys"]
    # Dotted keys (vars.address-groups.NAME), as the vars template writes them.
    variables: dict[str, dict[str, str]] = {}
    for key, value in doc.items():
        prefix, _, rest = str(key).partition(".")
        group, _, name = rest.partition(".")
        if prefix == "vars" and name:
            variables.setdefault(group, {})[name] = str(value)
    specs, _ = discover()
    ctx = build_context(specs, empty_policy())
    where = str(root / rules_rel)
    try:
        rules = suricata.parse_rules(files[rules_rel], where)
        classtypes = suricata.parse_classification(files[class_rel], str(root / class_rel))
    except RenderError as exc:
        return [str(exc)]
    return suricata.check_rules(
        rules,
        variables,
        ctx["signatures"],
        where,
        suricata.omitted_sids(files[rules_rel]),
        classtypes,
    )


def check_pack(root: Path, run_suricata: bool = True) -> list[str]:
    """Every problem with the pack in ``root``; empty when it is sound.

    Each part is checked whatever the others hold: a broken variables file does not
    hide a broken Sigma rule.
    """
    from detectors.rules import engine_suricata, sigma, suricata
    from detectors.rules.pack import check_manifest

    problems = check_manifest(root)
    files = read_pack(root, problems)
    problems += _suricata_problems(root, files)
    sigma_files = {rel: text for rel, text in files.items() if rel.startswith("sigma/")}
    # sigma.check names files relative to the pack; the operator needs the real path.
    problems += [f"{root / p}" if p.startswith("sigma/") else p for p in sigma.check(sigma_files)]
    # Suricata loads whatever the two files hold and reports its own errors with them.
    both = all(f"suricata/{f}" in files for f in (suricata.RULES_FILE, suricata.VARS_FILE))
    if run_suricata and both:
        if shutil.which("suricata") is None:
            problems.append("suricata is not installed (use --no-suricata to skip this check)")
        else:
            problems += engine_suricata.test_config(root)
    return problems


def _check(args: argparse.Namespace) -> int:
    root = Path(args.pack)
    if not root.is_dir():
        return _fail(f"{root}: not a directory (render one with `v6sentry rules render`)")
    problems = check_pack(root, not args.no_suricata)
    for problem in problems:
        print(f"v6sentry: {problem}", file=sys.stderr)
    n = len(read_pack(root, []))
    print(f"v6sentry: {root}: {n} files, {len(problems)} problems", file=sys.stderr)
    return EXIT_PROBLEMS if problems else EXIT_OK


def _matrix(args: argparse.Namespace) -> int:
    specs, _ = discover()
    ctx = build_context(specs, empty_policy())
    if args.format == "json":
        table = rows(ctx)
        json.dump({"totals": totals(table), "signatures": table}, sys.stdout, indent=1)
        print()
    else:
        sys.stdout.write(markdown(ctx))
    return EXIT_OK


def _push(args: argparse.Namespace) -> int:
    from elasticsearch import ApiError, TransportError

    from detectors.rules.pack import committed_pack, load, render_pack
    from detectors.rules.push import PushError, kibana_ndjson, push, rule_documents
    from detectors.rules.render import RenderError

    if not args.es and not args.kibana:
        return _fail("rules push needs --es URL, --kibana FILE or both")
    try:
        if args.policy:
            files = render_pack(load(args.policy)).files
        elif args.pack:
            root = Path(args.pack)
            if not (root / "sigma").is_dir():
                return _fail(f"{root}: no sigma/ folder (render one with `v6sentry rules render`)")
            problems: list[str] = []
            files = read_pack(root, problems)
            if problems:
                return _fail("; ".join(problems))
        else:
            # Rendered from the packaged example policy rather than read from the checkout:
            # an installed package has no checkout, and the directory above it
            # (site-packages) holds pySigma's own sigma/ package.
            files = committed_pack().files
        docs = rule_documents(files)
        ndjson = kibana_ndjson(docs) if args.kibana else ""
    except (PolicyError, RenderError, SpecError, PushError) as exc:
        return _fail(str(exc))
    if args.kibana:
        try:
            Path(args.kibana).write_text(ndjson, encoding="utf-8")
        except OSError as exc:
            return _fail(f"{args.kibana}: cannot write: {exc.strerror}")
        print(f"v6sentry: wrote {args.kibana}: {len(docs)} Kibana rules", file=sys.stderr)
    if args.es:
        try:
            client = client_from_args(args)
        except ConfigError as exc:
            return _fail(str(exc))
        try:
            counts = push(client, docs, args.index)
        except (ApiError, TransportError) as exc:
            return _fail(f"{args.es}: {exc}")
        finally:
            client.close()
        print(
            f"v6sentry: {args.index}: {counts['indexed']} rules stored, "
            f"{counts['deleted']} stale rules deleted",
            file=sys.stderr,
        )
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    if args.rules_command == "render":
        return _render(args)
    if args.rules_command == "push":
        return _push(args)
    if args.rules_command == "check":
        return _check(args)
    return _matrix(args)
