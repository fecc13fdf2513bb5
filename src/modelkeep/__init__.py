"""modelkeep."""
