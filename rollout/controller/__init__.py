"""The rollout controller: observe (Nomad + release state) → pure `decide` → thin idempotent `act`."""
