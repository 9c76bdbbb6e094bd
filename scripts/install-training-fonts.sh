#!/bin/sh
# The training-time faces of stage 2's synthetic text (docs/text.md, "Stage 2 on two cores"):
# Debian 12 font packages with free licences, drawn from /usr/share/fonts by
# textboost/train/font_pool.py. Never shipped, not needed by CI or the tests; without them
# the training finds only matplotlib's few DejaVu faces and says so.
#
#   make training-fonts        (or: sh scripts/install-training-fonts.sh; sudo when not root)
#
# With these (and the base system's fonts-dejavu-core), configs/stage2_words.yaml finds 216
# usable faces (Debian 12, bookworm).
set -eu
PACKAGES="
fonts-anonymous-pro fonts-b612 fonts-cantarell fonts-comic-neue fonts-crosextra-caladea
fonts-crosextra-carlito fonts-dejavu-core fonts-dejavu-extra fonts-droid-fallback
fonts-firacode fonts-freefont-ttf fonts-hack fonts-inconsolata fonts-jura fonts-lato
fonts-league-spartan fonts-liberation fonts-liberation2 fonts-linuxlibertine fonts-noto-mono
fonts-open-sans fonts-oxygen fonts-quicksand fonts-roboto-unhinted fonts-texgyre
fonts-urw-base35
"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update
# shellcheck disable=SC2086
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $PACKAGES
