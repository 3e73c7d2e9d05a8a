"""City services on the citizen card: parking, taxi, retail, venues, recycling, discounts,
rewards and facility access — one small rule module each, all pure like the rest of policies/.

This package owns the services half of the card (`ServicesState`, the one optional
`CardState.services` field), the services section of the tariff (`ServicesTariff`, the one
optional `Tariff.services` field), the service commands and their routes into `decide`.

Deliberately empty of imports: `policies.model` and `policies.tariff` import the leaf modules
`commands`, `state` and `tariff` of this package, so loading the package itself must not pull in
the rule modules (which import `policies.model` back). Import the submodules you need.
"""
