"""IAM with two gateways per site (docs/HA.md): a gateway may move routes only in the route tables tagged for its
own link and site, read route tables, and write its site's active record and its own health; without ``--ha``
its policy is as before. Judged by the test evaluator (tests/control/iam_eval.py) and by parliament."""

from __future__ import annotations

import json
from dataclasses import replace

from linker import naming
from linker.control.iam_policy import boundary_policy
from linker.control.render import role_policy
from tests.control.iam_eval import Decision, Request, evaluate
from tests.control.test_parliament import GATEWAY, findings

HA = replace(GATEWAY, ha=True)  # link prod, site eu-west-1
TABLE = "arn:aws:ec2:eu-west-1:123456789012:route-table/rtb-0123"


def allowed(action: str, resource: str, **tags: str) -> bool:
    """Whether the HA gateway's role, within linker's boundary, may make the request."""
    context = {f"ec2:resourcetag/{k}".lower(): (v,) for k, v in tags.items()}
    context |= {f"aws:resourcetag/{k}".lower(): (v,) for k, v in tags.items()}
    request = Request(action, resource, context)
    return all(evaluate([doc], request) == Decision.ALLOW
               for doc in (json.loads(role_policy(HA)), boundary_policy()))


def test_a_gateway_moves_routes_only_in_its_own_link_and_sites_tables() -> None:
    own = {naming.route_table_tag("prod"): "eu-west-1"}
    assert allowed("ec2:ReplaceRoute", TABLE, **own)
    assert allowed("ec2:DescribeRouteTables", "*")
    assert not allowed("ec2:ReplaceRoute", TABLE)  # a table the link does not manage
    assert not allowed("ec2:ReplaceRoute", TABLE, **{naming.route_table_tag("prod"): "us-east-1"})  # another site
    assert not allowed("ec2:ReplaceRoute", TABLE, **{naming.route_table_tag("other"): "eu-west-1"})  # another link
    assert not allowed("ec2:ReplaceRoute", TABLE.replace("eu-west-1", "us-east-1"), **own)  # another region
    for action in ("ec2:CreateRoute", "ec2:DeleteRoute", "ec2:CreateTags"):
        assert not allowed(action, TABLE, **own)


def test_a_gateway_writes_its_sites_active_record_and_its_own_health_only() -> None:
    def parameter(name: str, region: str = "eu-west-1") -> str:
        return f"arn:aws:ssm:{region}:123456789012:parameter{name}"

    assert allowed("ssm:PutParameter", parameter(naming.active_parameter("prod", "eu-west-1")))
    assert allowed("ssm:PutParameter", parameter(naming.gateway_health_parameter("prod", "eu-west-1", "i-0abc")))
    assert not allowed("ssm:PutParameter", parameter(naming.active_parameter("prod", "us-east-1")))
    assert not allowed("ssm:PutParameter", parameter(naming.active_parameter("other", "eu-west-1")))
    assert not allowed("ssm:PutParameter", parameter(naming.active_parameter("prod", "eu-west-1"), "us-east-1"))
    assert not allowed("ssm:PutParameter", parameter(naming.membership_parameter("prod")))
    assert not allowed("ssm:DeleteParameter", parameter(naming.active_parameter("prod", "eu-west-1")))


def test_without_ha_the_gateway_policy_is_as_before() -> None:
    actions = {a for s in json.loads(role_policy(GATEWAY))["Statement"] for a in s["Action"]}
    assert not [a for a in actions if a.startswith("ec2:")]
    assert json.loads(role_policy(HA))["Statement"][:len(json.loads(role_policy(GATEWAY))["Statement"])] == \
        json.loads(role_policy(GATEWAY))["Statement"]


def test_the_ha_gateway_policy_has_no_parliament_finding() -> None:
    assert findings(role_policy(HA)) == [[]]
