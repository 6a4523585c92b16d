"""`down` and `status` find every region of a link: they follow SSM's pages (a page may hold no parameter and a
NextToken), and a region this identity may not use is reported and skipped while the others are still searched."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError

from linker.control.aws import Clients, Target
from linker.control.operations import link_regions
from linker.errors import CloudError


def seed(aws: Any, region: str, link: str = "paged") -> None:
    ssm = aws.client("ssm", region_name=region)
    for name in ("lock", "membership", "sites/x/health"):
        ssm.put_parameter(Name=f"/linker/{link}/{name}", Value="{}", Type="String")


class EmptyFirstPage:
    """SSM's way: the first page of a path holds nothing and a NextToken (a before-call hook answering for it)."""

    def __init__(self, aws: Any) -> None:
        self.aws, self.pages = aws, 0

    def __call__(self, model: Any, params: Any, context: Any, **_: Any) -> Any:
        if model.name != "GetParametersByPath":
            return None
        self.pages += 1
        request = json.loads(params["body"])
        if "NextToken" in request:
            return None  # moto answers the later pages
        real = self.aws.client("ssm", region_name=context["client_region"]).get_parameters_by_path(
            Path=request["Path"], Recursive=True, MaxResults=1)
        if not real["Parameters"]:
            return None
        return (AWSResponse(url="", status_code=200, headers={}, raw=None),  # type: ignore[arg-type]
                {"Parameters": [], "NextToken": real["NextToken"], "ResponseMetadata": {"HTTPStatusCode": 200}})


def test_a_page_with_no_parameter_and_a_token_is_followed(aws: Any) -> None:
    seed(aws, "eu-west-1")
    hook = EmptyFirstPage(aws)
    clients = Clients(Target(), hooks=(("before-call.ssm.GetParametersByPath", hook),), session=aws)
    assert link_regions(clients, "paged", ["us-east-1", "eu-west-1", "ap-south-1"]) == ["eu-west-1"]
    assert hook.pages >= 4  # a second page in eu-west-1


def refuse_in(region: str) -> Any:
    def hook(model: Any, context: Any, **_: Any) -> None:
        if context.get("client_region") == region and model.name == "GetParametersByPath":
            raise ClientError({"Error": {"Code": "AccessDeniedException",
                                         "Message": "explicit deny in a service control policy"}}, model.name)
    return hook


def test_a_refused_region_is_reported_and_the_others_still_searched(aws: Any,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    seed(aws, "eu-west-1")
    seed(aws, "us-west-2")
    clients = Clients(Target(), hooks=(("before-call.ssm.*", refuse_in("us-west-2")),), session=aws)
    with caplog.at_level(logging.WARNING, logger="linker.control"):
        found = link_regions(clients, "paged")
    assert "eu-west-1" in found and "us-west-2" not in found
    assert any("us-west-2" in r.getMessage() and "--region us-west-2" in r.getMessage() for r in caplog.records)


def test_a_refused_region_the_user_named_is_an_error(aws: Any) -> None:
    seed(aws, "us-west-2")
    clients = Clients(Target(), hooks=(("before-call.ssm.*", refuse_in("us-west-2")),), session=aws)
    with pytest.raises(CloudError, match="AccessDenied"):
        link_regions(clients, "paged", ["eu-west-1", "us-west-2"])
