"""The controller: read AWS into facts, plan changes, apply them through boto3."""
