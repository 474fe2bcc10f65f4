"""Triggers: rules in a YAML file that submit pinned executions when a study appears (folder) or is announced
(signed webhook); a failed submission stays recorded for `rollout triggers retry`."""
