# What the pkg-config files of the C (ffi-c) and C++ (bindings-cpp) packages
# say their prefix, libdir and includedir are. The files are relocatable: the
# prefix is found from where the file is (${pcfiledir}), so
# `cmake --install --prefix` anywhere, or an unpacked release tarball, gives
# working files; absolute install dirs are written as they are.
#
# shmsock_pkgconfig_dirs() sets SHMSOCK_PC_PREFIX, SHMSOCK_PC_LIBDIR and
# SHMSOCK_PC_INCLUDEDIR for configure_file(... @ONLY).
function(shmsock_pkgconfig_dirs)
    if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}" OR IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
        set(prefix "${CMAKE_INSTALL_PREFIX}")
    else()
        file(RELATIVE_PATH up "/prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/prefix")
        string(REGEX REPLACE "/$" "" up "${up}")
        set(prefix "\${pcfiledir}/${up}")
    endif()
    foreach(kind LIBDIR INCLUDEDIR)
        if(IS_ABSOLUTE "${CMAKE_INSTALL_${kind}}")
            set(SHMSOCK_PC_${kind} "${CMAKE_INSTALL_${kind}}" PARENT_SCOPE)
        else()
            set(SHMSOCK_PC_${kind} "\${prefix}/${CMAKE_INSTALL_${kind}}" PARENT_SCOPE)
        endif()
    endforeach()
    set(SHMSOCK_PC_PREFIX "${prefix}" PARENT_SCOPE)
endfunction()
