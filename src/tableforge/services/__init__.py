"""Use cases: users, systems, rooms, tokens, chat and dice, assets, play (the socket flows)."""
