"""Apply a plan: ``run.Applier`` walks the phases; a handler table per AWS service (``ec2``, ``iam``, ``s3``,
``ssm``) says what each (action, kind) does."""

from linker.control.apply.run import HANDLERS, Applier, Handler, Progress

__all__ = ["HANDLERS", "Applier", "Handler", "Progress"]
