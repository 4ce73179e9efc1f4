"""Streaming monitoring of a recommender: events, per-minute aggregates, sequential
change detection on CTR and its upstream signals, and the ranking of causes."""
