"""What renders a review without touching anything: the offline plan (the real program
under Pulumi's mocks), its diff against a base, and the markdown runbook and mermaid graph."""
