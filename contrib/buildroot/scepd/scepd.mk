################################################################################
#
# scepd (sketch; not built in this tree)
#
################################################################################

SCEPD_VERSION = 0.1.0
SCEPD_SITE = https://example.org/scepd/releases
SCEPD_LICENSE = BSD-2-Clause
SCEPD_LICENSE_FILES = debian/copyright
# host-python3 embeds the Remote UI assets at build time
SCEPD_DEPENDENCIES = host-pkgconf host-python3 openssl libcurl libevent sqlite jansson libinih

# Options an integrator sets: no unit tests on the target, man pages off
# (Buildroot images carry none; turn on with host-scdoc if yours do), and
# the systemd paths when BR2_INIT_SYSTEMD is chosen.
SCEPD_CONF_OPTS = -Dtests=false -Dman=disabled \
	-Dsystemdunitdir=/usr/lib/systemd/system \
	-Dsysusersdir=/usr/lib/sysusers.d \
	-Dtmpfilesdir=/usr/lib/tmpfiles.d

define SCEPD_USERS
	scepd -1 scepd -1 * /var/lib/scepd - - scepd SCEP certificate agent
endef

define SCEPD_PERMISSIONS
	/var/lib/scepd d 0700 scepd scepd - - - - -
	/etc/scepd/exports d 0750 scepd scepd - - - - -
endef

ifeq ($(BR2_PACKAGE_SCEPD_CA),)
define SCEPD_REMOVE_CA
	rm -f $(TARGET_DIR)/usr/bin/scepca
endef
SCEPD_POST_INSTALL_TARGET_HOOKS += SCEPD_REMOVE_CA
endif

$(eval $(meson-package))
