"""Every on/off switch a role declares as `type: bool` is read through `| bool`.

`-e ollama_firewall=false` passes the string "false". Role argument validation
accepts it (it converts to a boolean) but does not change the variable, and in
Jinja a non-empty string is true: `not ollama_firewall` would be false and the
firewall stay on. So every expression that reads such a switch must apply the
`bool` filter to it directly. This test parses every Jinja expression in the
roles, playbooks and inventories (conditionals, templated strings, templates)
and names each read that does not.
"""
from pathlib import Path

import jinja2
import jinja2.nodes
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
# Regex escapes inside Jinja string literals ("\\.") make Python warn while parsing.
pytestmark = pytest.mark.filterwarnings("ignore:invalid escape sequence:DeprecationWarning")
CONDITIONAL_KEYS = {"when", "that", "failed_when", "changed_when", "until"}


class _Loader(yaml.SafeLoader):
    """Reads Ansible YAML, whatever its tags (!vault, !unsafe)."""


_Loader.add_multi_constructor("!", lambda loader, suffix, node: None)


def _bool_switches():
    names = set()
    for spec_file in ROOT.glob("roles/*/meta/argument_specs.yml"):
        for entry_point in yaml.safe_load(spec_file.read_text())["argument_specs"].values():
            for name, option in (entry_point.get("options") or {}).items():
                if option.get("type") == "bool":
                    names.add(name)
    return names


def _expressions(value, key=None):
    """(source, is_bare_expression) for every Jinja text in a loaded YAML value."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _expressions(v, k)
    elif isinstance(value, list):
        for item in value:
            yield from _expressions(item, key)
    elif isinstance(value, str):
        if key in CONDITIONAL_KEYS:
            yield value, True
        elif "{{" in value or "{%" in value:
            yield value, False


def _bare_reads(source, switches):
    """Names of switches read in `source` without `| bool` applied to them."""
    tree = jinja2.Environment(extensions=["jinja2.ext.do", "jinja2.ext.loopcontrols"]).parse(source)
    found = []

    def visit(node, parent):
        if (isinstance(node, jinja2.nodes.Name) and node.ctx == "load" and node.name in switches
                and not (isinstance(parent, jinja2.nodes.Filter) and parent.name == "bool"
                         and parent.node is node)):
            found.append(node.name)
        for child in node.iter_child_nodes():
            visit(child, node)

    visit(tree, None)
    return found


def _sources():
    for path in sorted(ROOT.glob("roles/**/*.j2")) + sorted(ROOT.glob("molecule/**/*.j2")):
        yield path, path.read_text()
    yaml_files = [p for d in ("roles", "playbooks", "inventory", "molecule") for p in ROOT.glob(f"{d}/**/*.yml")]
    for path in sorted(yaml_files):
        if "argument_specs" in path.name or path.read_text().startswith("$ANSIBLE_VAULT"):
            continue
        for source, bare in _expressions(yaml.load(path.read_text(), Loader=_Loader)):
            yield path, "{{ " + source + " }}" if bare else source


def test_the_switch_list_is_read_from_the_roles():
    # A parser that found nothing would pass everything below.
    assert {"ollama_firewall", "litellm_egress_firewall", "litellm_cache"} <= _bool_switches()


def test_the_checker_sees_a_bare_read():
    switches = {"ollama_firewall"}
    assert _bare_reads("{{ not ollama_firewall }}", switches) == ["ollama_firewall"]
    assert _bare_reads("{% if ollama_firewall and x %}a{% endif %}", switches) == ["ollama_firewall"]
    assert _bare_reads("{{ ollama_firewall | ternary(1, 0) }}", switches) == ["ollama_firewall"]
    assert _bare_reads("{{ not (ollama_firewall | bool) }}", switches) == []
    assert _bare_reads("{{ ollama_firewall | bool | ternary(1, 0) }}", switches) == []


def test_every_switch_is_read_through_bool():
    switches = _bool_switches()
    bare = []
    for path, source in _sources():
        try:
            names = _bare_reads(source, switches)
        except jinja2.TemplateSyntaxError as error:
            pytest.fail(f"{path.relative_to(ROOT)}: cannot parse {source!r}: {error}")
        bare += [f"{path.relative_to(ROOT)}: {name}" for name in names]
    assert not bare, "read without | bool:\n" + "\n".join(bare)
