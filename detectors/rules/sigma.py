"""The Sigma part of the pack: rules for three log sources and their Elasticsearch queries.

Owns which Sigma templates render (``data/sigma/templates/sigma/...``), where the rendered rules
and their conversions go (``sigma/rules/<logsource>/<name>.yml``,
``sigma/queries/lucene/<name>.txt``, ``sigma/queries/esql/<name>.esql``), the rule ids
(dates come from each spec's ``sigma.date``), the conversion with
pySigma-backend-elasticsearch through the processing pipelines in ``data/sigma/pipelines/``,
and the offline checks (``check``): every rule parses, passes pySigma's validators and converts
to exactly the committed query.

The three log sources:

- ``product: v6sentry, service: alert``: v6sentry's own ECS alerts, one rule per signature
  (every signature), matching the detection UUID (``rule.uuid``) and the sid
  (``rule.reference: sid:<sid>``).
- ``product: suricata, category: ids``: EVE alerts of the generated Suricata pack, one rule per
  signature declared ``full`` or ``partial`` for Suricata, by sid or by the rule metadata
  ``v6sentry_sid``.
- ``product: zeek, service: conn|tunnel``: one template per signature declared ``full`` or
  ``partial`` for Zeek (``data/sigma/templates/sigma/zeek/<sid>.yml.j2``); a template may render a
  base rule and a correlation rule, and may leave its rule out for a policy that lacks the
  data it needs (``# omitted sid <sid>: <why>``).

Backend problems handled here (pySigma-backend-elasticsearch 2.1.1):

- ES|QL correlations bucket time with ``date_trunc`` (tumbling windows): a sweep straddling a
  bucket boundary is split and can stay under the threshold in both halves. The ES|QL backend
  below counts over a look-back of one timespan from now instead, which slides with the rule's
  schedule; each query says so in its header comment.
- EQL: value_count correlations come out inverted and the ``siem_rule`` output is invalid, so
  no EQL is shipped.

Rule syntax lives in the templates and the pipelines, never here. It does not render the
Suricata part, write files, or run queries against Elasticsearch.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from functools import cache
from typing import Any, ClassVar

import jinja2
import yaml
from sigma.backends.elasticsearch.elasticsearch_esql import ESQLBackend
from sigma.backends.elasticsearch.elasticsearch_lucene import LuceneBackend
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaError
from sigma.processing.pipeline import ProcessingPipeline
from sigma.rule import SigmaRule
from sigma.validation import SigmaValidator
from sigma.validators.base import SigmaRuleValidator
from sigma.validators.core import validators as core_validators
from sigma.validators.core.tags import ATTACKTagValidator

from detectors.rules.context import RELAY_ANYCAST
from detectors.rules.render import SIGMA_DIR, RenderError, render_template

RULES = "sigma/rules"
QUERIES = "sigma/queries"
# Folders holding nothing but rendered files; anything else in them is a leftover.
GENERATED_DIRS: tuple[str, ...] = (RULES, QUERIES)
PIPELINES = SIGMA_DIR / "pipelines"
# Log source folder under sigma/rules -> its processing pipeline.
PIPELINE_FILES = {
    "v6sentry": "v6sentry_ecs.yml",
    "suricata": "suricata_elastic.yml",
    "zeek": "zeek_elastic.yml",
}
ATTACK = SIGMA_DIR / "attack.yaml"
AUTHOR = "v6sentry"
ZEEK_TEMPLATES = "sigma/zeek"
_OMITTED = re.compile(r"^#\s*omitted sid (\d+):\s*\S", re.MULTILINE)
# Validators left out of ``check``, each for a reason:
# - attacktag: downloads ATT&CK from GitHub; replaced by OfflineAttackTagValidator.
# - d3_fendtag: downloads D3FEND on the first tag it sees, whatever the namespace; the pack
#   uses no d3fend tags and ``check`` rejects any.
# - tlpv1_tag: the pack uses no TLP tags; tlpv2_tag and tlptag still check any that appear.
_SKIPPED_VALIDATORS = ("attacktag", "d3_fendtag", "tlpv1_tag")
# ES|QL's count_distinct is exact up to its precision threshold; 40000 is the maximum.
ESQL_COUNT_PRECISION = 40000


class SlidingESQLBackend(ESQLBackend):
    """ES|QL correlations over a look-back window instead of ``date_trunc`` buckets.

    The stock backend groups by ``date_trunc(<timespan>, @timestamp)``: fixed buckets, so a
    burst crossing a bucket boundary is counted in two halves. Here the query counts
    everything from ``now() - <timespan>``; run as a scheduled rule every I minutes it sees
    every burst lasting at most timespan - I whole.
    """

    _WINDOW = "| where @timestamp >= now() - {timespan}\n"
    event_count_aggregation_expression: ClassVar[dict[str, str]] = {
        "stats": _WINDOW + "| stats event_count=count(){fields}{groupby}"
    }
    value_count_aggregation_expression: ClassVar[dict[str, str]] = {
        "stats": _WINDOW
        + f"| stats value_count=count_distinct({{field}}, {ESQL_COUNT_PRECISION}){{fields}}"
        + "{groupby}"
    }
    temporal_aggregation_expression: ClassVar[dict[str, str]] = {
        "stats": _WINDOW + "| stats event_type_count=count_distinct(event_type){fields}{groupby}"
    }
    groupby_expression_nofield: ClassVar[dict[str, str]] = {"stats": ""}
    groupby_expression: ClassVar[dict[str, str]] = {"stats": " by {fields}"}
    groupby_field_expression: ClassVar[dict[str, str]] = {"stats": "{field}"}
    groupby_field_expression_joiner: ClassVar[dict[str, str]] = {"stats": ", "}
    timespan_mapping: ClassVar[dict[str, str]] = {
        "s": " seconds",
        "m": " minutes",
        "h": " hours",
        "d": " days",
        "w": " weeks",
        "M": " months",
        "y": " years",
    }


class OfflineAttackTagValidator(ATTACKTagValidator):
    """pySigma's ATT&CK tag check, with the tags read from ``data/sigma/attack.yaml``."""

    def _load_allowed_tags(self) -> set[str]:
        data = attack_data()
        return {str(v).lower() for v in data["tactics"].values()} | {
            str(k).lower() for k in data["techniques"]
        }


@cache
def attack_data() -> dict[str, dict[str, str]]:
    """The vendored ATT&CK subset: tactic id -> short name, technique id -> name."""
    data: dict[str, dict[str, str]] = yaml.safe_load(ATTACK.read_text(encoding="utf-8"))
    return data


def pipeline(logsource: str) -> ProcessingPipeline:
    """The processing pipeline of one log source folder (``v6sentry``, ``suricata``, ``zeek``)."""
    text = (PIPELINES / PIPELINE_FILES[logsource]).read_text(encoding="utf-8")
    return ProcessingPipeline.from_yaml(text)


def rule_uuid(detection_id: str, logsource: str, sid: int, part: str) -> str:
    """Stable rule id: the same detection, log source, signature and part, the same id."""
    return str(uuid.uuid5(uuid.UUID(detection_id), f"{logsource}/{sid}/{part}"))


def _documents(text: str, template: str) -> list[tuple[str, str]]:
    """(name, YAML text) of each rule document a template rendered."""
    out = []
    for doc in re.split(r"^---\n", text, flags=re.MULTILINE):
        if not doc.strip() or all(
            not line.strip() or line.startswith("#") for line in doc.splitlines()
        ):
            continue
        try:
            data = yaml.safe_load(doc)
        except yaml.YAMLError as exc:
            raise RenderError(f"{template}: rendered invalid YAML: {exc}") from exc
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            raise RenderError(f"{template}: a rendered rule has no name")
        out.append((data["name"], doc.strip("\n") + "\n"))
    return out


def _rule_files(
    env: jinja2.Environment, ctx: Mapping[str, Any]
) -> tuple[dict[str, str], list[str]]:
    """Rendered rule files (path -> text) and the coverage problems found on the way."""
    loader = env.loader
    assert loader is not None
    templates = set(loader.list_templates())
    files: dict[str, str] = {}
    problems: list[str] = []
    for det in ctx["detections"].values():
        date = det["sigma_date"]  # the spec's sigma.date, required by detectors.spec
        for sig in det["signatures"]:
            sid = sig["sid"]
            if sid in ctx["disabled"]:
                continue  # a tuning entry disables it: no rule in any log source
            # Active suppressions of this signature, in file order, as filters.
            tuned = [t for t in ctx["tuning"] if t["enabled"] and sid in t["sids"]]
            what = f"sid {sid} ({det['category']} {sig['key']})"
            parts = [("v6sentry", "sigma/v6sentry_alert.yml.j2")]
            if sig["coverage"]["suricata"]["level"] != "none":
                parts.append(("suricata", "sigma/suricata_alert.yml.j2"))
            zeek_template = f"{ZEEK_TEMPLATES}/{sid}.yml.j2"
            zeek_level = sig["coverage"]["zeek"]["level"]
            if zeek_level != "none":
                if zeek_template not in templates:
                    problems.append(f"{what} is declared {zeek_level} for Zeek but has no rule")
                else:
                    parts.append(("zeek", zeek_template))
            elif zeek_template in templates:
                problems.append(f"{zeek_template}: {what} is declared none for Zeek")

            for logsource, template in parts:
                # Zeek's logs have no alert to filter by sid; Suricata's EVE rules here
                # match addresses only (no MAC field in the pipeline).
                expressible = [
                    t
                    for t in tuned
                    if logsource == "v6sentry"
                    or (
                        logsource == "suricata"
                        and all(e["kind"] == "ip" for e in t["sides"].values())
                    )
                ]

                def make_id(
                    part: str, _det: str = det["id"], _ls: str = logsource, _sid: int = sid
                ) -> str:
                    return rule_uuid(_det, _ls, _sid, part)

                text = render_template(
                    env,
                    template,
                    det=det,
                    sig=sig,
                    policy=ctx["policy"],
                    uuid=make_id,
                    date=date,
                    author=AUTHOR,
                    relay_anycast=RELAY_ANYCAST,
                    filters=expressible,
                    unexpressed=[t for t in tuned if t not in expressible],
                )
                docs = _documents(text, template)
                if not docs and sid not in {int(s) for s in _OMITTED.findall(text)}:
                    problems.append(f"{template}: rendered no rule for {what} and says no why")
                for name, doc in docs:
                    path = f"{RULES}/{logsource}/{name}.yml"
                    if path in files:
                        problems.append(f"{path}: rendered twice")
                    files[path] = doc
    # Templates for sids no spec has are dead rules.
    sids = {str(s) for s in ctx["signatures"]}
    for name in sorted(templates):
        m = re.fullmatch(rf"{ZEEK_TEMPLATES}/(\d+)\.yml\.j2", name)
        if m and m.group(1) not in sids:
            problems.append(f"{name}: no signature has sid {m.group(1)}")
    return files, problems


def _query_stem(path: str) -> str:
    return path.rsplit("/", 1)[1].rsplit(".", 1)[0]


def _yaml_shape(path: str, text: str) -> str | None:
    """Why ``text`` cannot be a Sigma rule file as YAML (empty, not YAML, not one mapping)."""
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"{path}:{mark.line + 1}" if mark is not None else path
        return f"{at}: not YAML: {getattr(exc, 'problem', None) or exc}"
    docs = [d for d in docs if d is not None]
    if not docs:
        return f"{path}: empty (no rule)"
    if len(docs) != 1:
        return f"{path}: holds {len(docs)} YAML documents, not one rule"
    if not isinstance(docs[0], dict):
        return f"{path}: a YAML {type(docs[0]).__name__}, not a rule mapping"
    return None


def _tag_disagreements(rules: list[SigmaRule | SigmaCorrelationRule]) -> list[str]:
    """Rules for one signature in different log sources whose tags differ.

    Rules are named ``<logsource>_<detection>_<signature>``; the same name after the log
    source is the same signature, which must carry the same ATT&CK tags everywhere.
    """
    by_signature: dict[str, dict[str, list[str]]] = {}
    for rule in rules:
        source, _, rest = str(rule.name).partition("_")
        if source in PIPELINE_FILES and rest:
            by_signature.setdefault(rest, {})[str(rule.name)] = sorted(str(t) for t in rule.tags)
    problems = []
    for signature, named in sorted(by_signature.items()):
        if len({tuple(tags) for tags in named.values()}) > 1:
            shown = "; ".join(f"{name}: {', '.join(tags)}" for name, tags in sorted(named.items()))
            problems.append(f"{RULES}: rules for signature {signature} differ in tags ({shown})")
    return problems


def _logsource(path: str) -> str:
    return path.split("/")[2]


def _stem(path: str) -> str:
    return path.rsplit("/", 1)[1].removesuffix(".yml")


def _esql_header(rule: SigmaCorrelationRule) -> str:
    return (
        f"// {rule.title}\n"
        f"// Sigma rule {rule.id}, converted by pySigma-backend-elasticsearch (ES|QL).\n"
        "// Window: counts from now() minus the rule's timespan (not Sigma's date_trunc\n"
        "// buckets, which split a burst crossing a bucket boundary). Schedule it as a rule\n"
        "// running every few minutes, well below the timespan: a burst lasting at most\n"
        "// timespan minus the interval is seen whole by some run.\n"
    )


def convert(rule_files: Mapping[str, str]) -> dict[str, str]:
    """Query files for the rule files: Lucene for base rules, ES|QL for correlations.

    Base rules that a correlation refers to are not alerts on their own and get no query.
    """
    out: dict[str, str] = {}
    by_source: dict[str, dict[str, str]] = {}
    for path, text in sorted(rule_files.items()):
        by_source.setdefault(_logsource(path), {})[path] = text
    for logsource, files in sorted(by_source.items()):
        parsed = {path: yaml.safe_load(text) for path, text in files.items()}
        by_name = {doc["name"]: path for path, doc in parsed.items()}
        referenced = {
            by_name[ref]
            for doc in parsed.values()
            if "correlation" in doc
            for ref in doc["correlation"]["rules"]
            if ref in by_name
        }
        for path, doc in parsed.items():
            stem = _stem(path)
            if "correlation" in doc:
                refs = [files[by_name[r]] for r in doc["correlation"]["rules"]]
                collection = SigmaCollection.from_yaml("---\n".join([*refs, files[path]]))
                queries = SlidingESQLBackend(pipeline(logsource)).convert(collection)
                if len(queries) != 1:
                    raise RenderError(f"{path}: ES|QL conversion gave {len(queries)} queries")
                corr = next(r for r in collection if isinstance(r, SigmaCorrelationRule))
                out[f"{QUERIES}/esql/{stem}.esql"] = _esql_header(corr) + queries[0] + "\n"
            elif path not in referenced:
                collection = SigmaCollection.from_yaml(files[path])
                queries = LuceneBackend(pipeline(logsource)).convert(collection)
                if len(queries) != 1:
                    raise RenderError(f"{path}: Lucene conversion gave {len(queries)} queries")
                out[f"{QUERIES}/lucene/{stem}.txt"] = queries[0] + "\n"
    return out


def render(env: jinja2.Environment, ctx: Mapping[str, Any]) -> dict[str, str]:
    """The Sigma files of a pack (relative path -> text): rules and their queries."""
    rules, problems = _rule_files(env, ctx)
    if problems:
        raise RenderError("; ".join(problems))
    try:
        files = {**rules, **convert(rules)}
    except SigmaError as exc:
        raise RenderError(f"Sigma conversion failed: {exc}") from exc
    problems = check(files)
    if problems:
        raise RenderError("; ".join(problems))
    return dict(sorted(files.items()))


def validator_classes() -> list[type[SigmaRuleValidator]]:
    """pySigma's core validators that work offline, plus the offline ATT&CK tag check."""
    chosen: list[type[SigmaRuleValidator]] = [
        cls for name, cls in sorted(core_validators.items()) if name not in _SKIPPED_VALIDATORS
    ]
    return [*chosen, OfflineAttackTagValidator]


def check(files: Mapping[str, str]) -> list[str]:
    """Problems with the Sigma files of a pack; empty when they are valid.

    Every rule file holds one rule that parses, passes the validators (offline) and sits in
    the folder of its log source; the query files are exactly what converting the rules
    gives now; no ES|QL query uses date_trunc buckets.
    """
    problems: list[str] = []
    rule_files = {p: t for p, t in files.items() if p.startswith(f"{RULES}/")}
    rules: list[SigmaRule | SigmaCorrelationRule] = []
    # Rule files that hold one sound rule: only these are validated and converted
    # (pySigma's validators and the converter assume a rule that parsed).
    sound: dict[str, str] = {}
    for path, text in sorted(rule_files.items()):
        logsource = _logsource(path) if path.count("/") == 3 else ""
        if logsource not in PIPELINE_FILES or not path.endswith(".yml"):
            problems.append(f"{path}: not sigma/rules/<v6sentry|suricata|zeek>/<name>.yml")
            continue
        shape = _yaml_shape(path, text)
        if shape:
            problems.append(shape)
            continue
        try:
            # References between files are resolved below, over all the rules at once.
            collection = SigmaCollection.from_yaml(
                text, collect_errors=True, resolve_references=False
            )
        except SigmaError as exc:
            problems.append(f"{path}: {exc}")
            continue
        if len(collection.rules) != 1:
            problems.append(f"{path}: holds {len(collection.rules)} rules, not one")
            continue
        rule = collection.rules[0]
        for error in rule.errors:
            problems.append(f"{path}: {error}")
        if rule.errors:
            continue
        if rule.name != _stem(path):
            problems.append(f"{path}: rule name {rule.name!r} is not the file name")
        if isinstance(rule, SigmaRule):
            want = {"v6sentry": "v6sentry", "suricata": "suricata", "zeek": "zeek"}[logsource]
            if rule.logsource.product != want:
                problems.append(f"{path}: logsource product {rule.logsource.product}, not {want}")
        for tag in rule.tags:
            if tag.namespace == "d3fend":
                problems.append(f"{path}: d3fend tag {tag} cannot be validated offline")
        rules.append(rule)
        sound[path] = text
    problems += _tag_disagreements(rules)
    try:
        SigmaCollection(list(rules))  # every correlation's rules exist among the files
    except SigmaError as exc:
        problems.append(f"{RULES}: {exc}")
    validator = SigmaValidator(validator_classes())
    # validate_rules is annotated for SigmaRule only; its validators take correlations too.
    for issue in validator.validate_rules(iter(rules)):  # type: ignore[arg-type]
        names = ", ".join(str(r.name or r.id) for r in issue.rules)
        problems.append(f"{names}: {issue.description} ({issue.severity.name.lower()})")
    query_files = {p: t for p, t in files.items() if p.startswith(f"{QUERIES}/")}
    try:
        fresh = convert(sound)
    except (SigmaError, RenderError) as exc:
        problems.append(f"conversion failed: {exc}")
        fresh = query_files
    # A broken rule file is reported above; its query is not judged against nothing.
    broken = {_stem(p) for p in set(rule_files) - set(sound)}
    for path in sorted(set(fresh) | set(query_files)):
        if path not in fresh and _query_stem(path) in broken:
            continue
        if path not in query_files:
            problems.append(f"{path}: missing (the rules convert to it)")
        elif path not in fresh:
            problems.append(f"{path}: no rule converts to it")
        elif fresh[path] != query_files[path]:
            problems.append(f"{path}: differs from converting its rule now")
        query = "".join(
            line for line in query_files.get(path, "").splitlines(True) if not line.startswith("//")
        )
        if path.endswith(".esql") and re.search(r"date_trunc|timebucket", query):
            problems.append(f"{path}: uses date_trunc buckets (tumbling windows split bursts)")
    other = set(files) - set(rule_files) - set(query_files)
    problems += [f"{p}: not a Sigma rule or query path" for p in sorted(other)]
    return problems


__all__: list[str] = [
    "GENERATED_DIRS",
    "OfflineAttackTagValidator",
    "SlidingESQLBackend",
    "check",
    "convert",
    "pipeline",
    "render",
    "rule_uuid",
]
