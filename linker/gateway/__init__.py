"""The agent that runs on each gateway host."""
