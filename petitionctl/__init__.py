"""``petitionctl``: the operators' command line."""
