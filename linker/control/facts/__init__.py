"""Facts: what exists in AWS that matters to one link, read into plain frozen data.

``model`` holds the data (pure), ``readers`` the AWS calls that fill it (Describe/Get/List only). The choices made
from the facts (which VPC, which subnet) are planning, in ``linker.control.placement``.
"""

from linker.control.facts.model import (
    Bucket,
    Eip,
    IamFacts,
    Instance,
    LinkFacts,
    Permission,
    RegionFacts,
    Route,
    RouteTable,
    SecurityGroup,
    Subnet,
    Tags,
    Vpc,
    has_link_resources,
)
from linker.control.facts.readers import account_id, ami_parameter, gather, gather_region, terraform_managed

__all__ = ["Bucket", "Eip", "IamFacts", "Instance", "LinkFacts", "Permission", "RegionFacts", "Route", "RouteTable",
           "SecurityGroup", "Subnet", "Tags", "Vpc", "account_id", "ami_parameter", "gather", "gather_region",
           "has_link_resources", "terraform_managed"]
