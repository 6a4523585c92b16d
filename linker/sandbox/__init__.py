"""The sandbox: the whole link on one machine, in network namespaces, with no AWS account (``--sandbox``).

``linker up us-east-1 eu-west-1 --sandbox --yes`` (as root) starts a supervisor in the background (lifecycle.py,
supervisor.py) that serves an embedded AWS API (endpoint.py, moto) and mirrors what the API holds into namespaces.
The CLI (linker/cli/local.py) checks the machine (preflight.py), lays out a VPC per region (seed.py: public and
private subnet, internet gateway, a workload host at 10.x.2.10) and then runs the controller exactly as against
AWS, with a ``Target`` whose session holds only the sandbox's access key. Every instance the
controller launches becomes a host (hosts.py) that boots its own user-data (cloudinit.py, shims.py) and runs its
units (services.py), so the gateways run the agent and daemon from the wheel the controller uploaded. Each VPC's
router namespace applies the route tables, source/dest check, security groups and 1:1 NAT (network.py); the
sandbox internet carries TEST-NET addresses only (addressing.py). ``up`` ends by proving the link from workload
host to workload host (proof.py, probe.py; inspection.py reads the gateways' daemons); ``linker down --sandbox``
removes the links, then everything the sandbox made.

What the sandbox does not emulate, said where it matters: the instance metadata service (a host's AWS credentials
are dummy ones in its environment), IAM policy enforcement (moto does not enforce it), security group egress rules,
IPv6, systemd beyond Restart/RestartSec/State- and RuntimeDirectory, and cloud-init modules other than write_files
and runcmd. Hosts share the machine's kernel and software: the stand-ins install nothing, and host-wide sysctls
are not applied.
"""
