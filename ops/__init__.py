"""ops package: the control room side. `ops.settlement` computes the daily clearing report
(who is owed what) from the journal."""
