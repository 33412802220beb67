"""The ground every layer stands on: settings from the environment, and logging."""
