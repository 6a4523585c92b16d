"""The module for real, with the hashicorp/aws provider and no account: ``terraform init`` from a local plugin
directory, ``validate``, and ``terraform test`` with mock providers (terraform/**/tests/*.tftest.hcl: the security
group, IMDSv2, encryption, routes and membership of one site; the two-region example end to end). Skipped, saying
why, where this machine has no recent terraform or no provider directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.terraform import tf

CONFIGS = ("terraform/modules/gateway", "terraform/examples/two-region")


@pytest.fixture(scope="module")
def terraform() -> Iterator[tuple[tf.Terraform, Path]]:
    exe, plugins = tf.recent_binary(), tf.aws_plugin_dir()
    if exe is None:
        pytest.skip("no terraform >= 1.7 on PATH (or in LINKER_TERRAFORM): `terraform test` needs mock providers")
    if plugins is None:
        pytest.skip("no local directory with the hashicorp/aws 5.x provider (LINKER_TF_PLUGIN_DIR, or one of "
                    f"{', '.join(tf.PLUGIN_DIRS)}); this machine cannot download providers")
    with tf.scratch(exe) as scratch:
        yield scratch, plugins


@pytest.mark.parametrize("config", CONFIGS)
def test_init_validate_and_test_with_mock_providers(terraform: tuple[tf.Terraform, Path], config: str) -> None:
    scratch, plugins = terraform
    where = scratch.root / config
    where.chmod(0o777)  # terraform writes .terraform/ and the lock file here (as nobody when the tests run as root)
    scratch.run(["init", "-input=false", "-no-color", f"-plugin-dir={plugins}"], cwd=where)
    lock = (where / ".terraform.lock.hcl").read_text()
    assert 'provider "registry.terraform.io/hashicorp/aws"' in lock and 'constraints = "~> 5.0"' in lock
    assert "Success!" in scratch.run(["validate", "-no-color"], cwd=where).stdout
    done = scratch.run(["test", "-no-color"], cwd=where, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert " 0 failed" in done.stdout and "Success!" in done.stdout


def test_a_description_ec2_rejects_fails_the_module_test(terraform: tuple[tf.Terraform, Path]) -> None:
    """The check can fail: an apostrophe in a rule description (EC2 rejects it at apply) fails `terraform test`."""
    scratch, plugins = terraform
    where = scratch.root / "terraform/modules/gateway"
    main = where / "main.tf"
    main.chmod(0o666)
    main.write_text(main.read_text().replace("traffic of the site VPC", "traffic of this site's VPC"))
    where.chmod(0o777)
    scratch.run(["init", "-input=false", "-no-color", f"-plugin-dir={plugins}"], cwd=where)
    done = scratch.run(["test", "-no-color"], cwd=where, check=False)
    assert done.returncode != 0
    assert "doesn't comply with restrictions" in done.stdout + done.stderr
