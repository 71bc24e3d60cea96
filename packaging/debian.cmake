# The Debian package of tidemarkd and the tidemark CLI, made in the build directory by
#
#     cpack -G DEB        # -> tidemark_<version>_amd64.deb
#
# It holds /usr/bin/tidemarkd and /usr/bin/tidemark, the hardened unit (its ExecStart naming
# /usr/bin/tidemarkd), the example configuration in /usr/share/tidemark, and each program's
# --help as /usr/share/doc/tidemark/<program>.txt. On install, /etc/tidemark/tidemarkd.toml is
# made from the example if there is none (never overwritten); purging the package removes it
# (packaging/postrm). The store, /var/lib/tidemark (the unit's StateDirectory), belongs to the
# daemon's data: removing or purging the package leaves it. Depends are computed by dpkg-shlibdeps. The agent is not in it: it is a wheel per
# interpreter (docs/agent.md).
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME tidemark)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "tidemark maintainers <tidemark@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "tidemarkd and tidemark: heap snapshots and leak detection for Python services")
set(CPACK_DEBIAN_PACKAGE_SECTION utils)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_STRIP_FILES ON)  # The debug information stays in the build tree.
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_GROUPING ALL_COMPONENTS_IN_ONE)
set(CPACK_COMPONENTS_ALL daemon cli)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA "${CMAKE_CURRENT_LIST_DIR}/postinst;${CMAKE_CURRENT_LIST_DIR}/postrm")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
