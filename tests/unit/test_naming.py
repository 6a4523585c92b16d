"""Route tags: what route_tag writes on a route table, routes_tagged reads back, for one link only."""

from __future__ import annotations

from linker import naming


def test_routes_tagged_reads_back_the_links_route_tags_and_nothing_else() -> None:
    tags = [
        (naming.route_tag("demo", "10.20.0.0/16"), "eu-west-1"),
        (naming.route_tag("demo", "fd00:20::/48"), "eu-west-1"),
        (naming.route_tag("other", "10.30.0.0/16"), "ap-south-1"),  # another link's route in the same table
        (naming.route_table_tag("demo"), "us-east-1"),  # the table's own tag, not a route
        ("Name", "main"),
    ]
    assert naming.routes_tagged("demo", tags) == {"10.20.0.0/16": "eu-west-1", "fd00:20::/48": "eu-west-1"}
    assert naming.routes_tagged("other", tags) == {"10.30.0.0/16": "ap-south-1"}
    assert naming.routes_tagged("none", tags) == {}
