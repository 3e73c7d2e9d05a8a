"""The operators' package, on the top floor: the `citycard` command (`cli`) with every
sub-command, card and key administration (`admin_cli`), tariff and fares checks, and settlement
(`settlement`: the daily clearing report from the journal). It may import every other package;
nothing imports it."""
