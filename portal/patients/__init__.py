"""Patient records (demographics); the anchor every piece of patient data hangs from."""
