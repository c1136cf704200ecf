// Package deploy owns how jobrunner is deployed: the container image
// recipe (Containerfile, built offline by scripts/image), the compose file
// (MariaDB, two instances, the demo ERP) and the systemd unit. It has no
// code; its tests build and check those files.
package deploy
