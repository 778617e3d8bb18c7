# Sketch of a Yocto (OpenEmbedded) recipe for scepd; not built in this tree.
# Put it in a layer as recipes-connectivity/scepd/scepd_0.1.0.bb and point
# SRC_URI at the release or the repository you build from.
SUMMARY = "SCEP certificate agent with a REST API and a web admin UI"
DESCRIPTION = "scepd gets a device its certificate through SCEP (RFC 8894); \
scepctl runs every SCEP operation one shot; scepca is a small SCEP CA for labs."
HOMEPAGE = "https://example.org/scepd"
SECTION = "net"
LICENSE = "BSD-2-Clause"
# debian/copyright carries the licence text (md5 of this tree's copy; it
# changes when the file does).
LIC_FILES_CHKSUM = "file://debian/copyright;md5=9022e1acb69d1a2f638e249f0a625114"

SRC_URI = "git://example.org/scepd.git;protocol=https;branch=main"
SRCREV = "${AUTOREV}"
S = "${WORKDIR}/git"

# Build dependencies. scdoc-native renders the man pages;
# python3-native embeds the Remote UI assets.
DEPENDS = "openssl curl libevent sqlite3 jansson libinih scdoc-native python3-native"

inherit meson pkgconfig systemd useradd

# Options an integrator sets:
# - tests: the cmocka unit tests (need cmocka, run on the build host only)
# - man:   man pages (drop with PACKAGECONFIG:remove = "man" on images without man)
# - the unit, sysusers.d and tmpfiles.d directories follow the distro's
#   systemd paths
PACKAGECONFIG ??= "man"
PACKAGECONFIG[man] = "-Dman=enabled,-Dman=disabled,scdoc-native"
EXTRA_OEMESON = "-Dtests=false \
    -Dsystemdunitdir=${systemd_system_unitdir} \
    -Dsysusersdir=${nonarch_libdir}/sysusers.d \
    -Dtmpfilesdir=${nonarch_libdir}/tmpfiles.d"

# The user scepd runs as. With systemd's sysusers at first boot the
# sysusers.d file alone suffices; useradd creates it at image build time,
# which read-only root filesystems need.
USERADD_PACKAGES = "${PN}"
USERADD_PARAM:${PN} = "--system --home-dir /var/lib/scepd --no-create-home \
    --shell /sbin/nologin --user-group --comment 'scepd SCEP certificate agent' scepd"

SYSTEMD_SERVICE:${PN} = "scepd.service"
SYSTEMD_AUTO_ENABLE:${PN} = "enable"

# scepd.conf is the device's configuration; keep local changes on upgrade.
CONFFILES:${PN} = "${sysconfdir}/scepd/scepd.conf"

FILES:${PN} += "${systemd_system_unitdir} ${nonarch_libdir}/sysusers.d ${nonarch_libdir}/tmpfiles.d"

# scepca is a lab CA; most device images leave it out.
PACKAGES =+ "${PN}-ca"
FILES:${PN}-ca = "${bindir}/scepca ${mandir}/man1/scepca.1"

RDEPENDS:${PN} = "ca-certificates"
