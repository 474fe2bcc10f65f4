# Sourced by scripts/bootstrap: keep package scripts from starting services only while packages install.
#
# Debian's invoke-rc.d asks /usr/sbin/policy-rc.d before starting a service; `exit 101` says no, which keeps
# docker.io and docker-registry from grabbing fixed ports during the install. Left in place it would stop every
# later package (security updates included) from restarting its daemon, so the file is ours only for the install:
# an administrator's own policy is saved beside it and put back, ours is removed. A run killed before it could
# restore (SIGKILL, power loss) is repaired by the next run's policy_rc_block, which restores first.
#
# Every function takes the root to act on ("" for the real one; tests pass a temporary folder). $SUDO, if set,
# prefixes the commands that write there.

POLICY_RC_MARK="# written by biomarker-delivery scripts/bootstrap for one install; removed afterwards"

policy_rc_path() { printf '%s/usr/sbin/policy-rc.d' "$1"; }

policy_rc_block() {
  local root="$1" file saved
  file=$(policy_rc_path "$root"); saved="$file.bootstrap-saved"
  policy_rc_restore "$root"  # a previous run that died mid-install left ours (and maybe a saved one) behind
  ${SUDO:-} mkdir -p "$(dirname "$file")"
  if [ -e "$file" ] || [ -L "$file" ]; then
    ${SUDO:-} mv "$file" "$saved"
  fi
  printf '#!/bin/sh\n%s\nexit 101\n' "$POLICY_RC_MARK" | ${SUDO:-} tee "$file" >/dev/null
  ${SUDO:-} chmod 755 "$file"
}

policy_rc_restore() {
  local root="$1" file saved
  file=$(policy_rc_path "$root"); saved="$file.bootstrap-saved"
  if [ -f "$file" ] && grep -qF "$POLICY_RC_MARK" "$file"; then
    ${SUDO:-} rm -f "$file"
  fi
  if { [ -e "$saved" ] || [ -L "$saved" ]; } && ! { [ -e "$file" ] || [ -L "$file" ]; }; then
    ${SUDO:-} mv "$saved" "$file"
  fi
}
