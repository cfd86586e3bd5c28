"""Moving a channel change from stage to stage: `promote` (copy a verified channel into the
next stack file) and `rollout` (preview/up stacks in order through the Automation API)."""
