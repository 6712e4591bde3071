# Run by `cmake --install` and cpack (install(CODE) in deploy/CMakeLists.txt)
# with CMAKE_INSTALL_PREFIX as the install sees it: puts kvpool.conf, the
# logrotate file and kvpool.service where that prefix's system looks for
# them. file(INSTALL) adds DESTDIR itself.
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(etc /etc)
  set(unitdir /lib/systemd/system)
else()
  set(etc ${CMAKE_INSTALL_PREFIX}/etc)
  set(unitdir ${CMAKE_INSTALL_PREFIX}/lib/systemd/system)
endif()
set(confdir ${etc}/kvpool)

set(KVPOOL_BINDIR ${CMAKE_INSTALL_PREFIX}/${KVPOOL_BINDIR_REL})
set(KVPOOL_DOCDIR ${CMAKE_INSTALL_PREFIX}/${KVPOOL_DOCDIR_REL})
set(KVPOOL_CONFDIR ${confdir})
configure_file(${KVPOOL_DEPLOY_SOURCE}/kvpool.service.in
               ${KVPOOL_DEPLOY_BINARY}/kvpool.service @ONLY)

file(INSTALL ${KVPOOL_DEPLOY_BINARY}/kvpool.conf DESTINATION ${confdir}
     PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
file(INSTALL ${KVPOOL_DEPLOY_SOURCE}/kvpool.logrotate DESTINATION ${etc}/logrotate.d
     RENAME kvpool PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
file(INSTALL ${KVPOOL_DEPLOY_BINARY}/kvpool.service DESTINATION ${unitdir}
     PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
