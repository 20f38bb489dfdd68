/* What a user can do when the modem's port fails: the advice that goes
 * into the modem's log line, for the mistakes of a first installation
 * (the wrong port of the module's several, a user outside the serial
 * devices' group, ModemManager holding the port). */
#include "at/port_int.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LIST_PORTS "`modem2mqtt --list-ports`"

/* The group that may use the device: its own when the group has read and
 * write access (dialout on Debian, uucp on Arch), else the usual one. */
static const char *device_group(const char *spec, char *buf, size_t size)
{
    struct stat st;
    struct group gr, *res = NULL;
    char tmp[1024];

    snprintf(buf, size, "dialout");
    if (stat(spec, &st) < 0 || (st.st_mode & (S_IRGRP | S_IWGRP)) != (S_IRGRP | S_IWGRP))
        return buf;
    if (getgrgid_r(st.st_gid, &gr, tmp, sizeof(tmp), &res) == 0 && res)
        snprintf(buf, size, "%s", res->gr_name);
    return buf;
}

/* The name of the user this process runs as, for a command to copy. */
static const char *user_name(char *buf, size_t size)
{
    struct passwd pw, *res = NULL;
    char tmp[1024];
    uid_t uid = geteuid();

    if (getpwuid_r(uid, &pw, tmp, sizeof(tmp), &res) == 0 && res)
        snprintf(buf, size, "%s", res->pw_name);
    else
        snprintf(buf, size, "%u", (unsigned)uid);
    return buf;
}

const char *at_port_open_advice(int err, const char *spec, char *buf, size_t size)
{
    char user[64], group[64];

    switch (err) {
    case -EACCES:
    case -EPERM:
        user_name(user, sizeof(user));
        device_group(spec, group, sizeof(group));
        snprintf(buf, size,
                 ": user %s may not use it; add it to group %s (`sudo usermod -aG %s %s`, "
                 "then log in again; systemd: SupplementaryGroups=%s; docker compose: "
                 "group_add: [%s])",
                 user, group, group, user, group, group);
        break;
    case -EBUSY:
        snprintf(buf, size, ": another program holds it (ModemManager: `systemctl stop "
                            "ModemManager`; a second modem2mqtt?)");
        break;
    case -ENOENT:
        snprintf(buf, size, ": is the modem plugged in? " LIST_PORTS " shows the serial ports");
        break;
    case -ENOTTY:
        snprintf(buf, size, ": not a serial port; " LIST_PORTS " shows the serial ports");
        break;
    case -ENODEV:
        snprintf(buf, size, ": no known modem found for \"auto\"; " LIST_PORTS
                            " shows the serial ports, set the modem's AT port");
        break;
    default:
        buf[0] = '\0';
        break;
    }
    return buf;
}

const char *at_port_silent_advice(const struct at_port *port, const char *spec, int baud,
                                  char *buf, size_t size)
{
    /* "auto" says nothing about which port was tried. No port: it was
     * lost meanwhile, the spec tells what it was. */
    const char *name = port && strcmp(spec, "auto") == 0 ? port->name : spec;
    bool tcp = port ? port->kind == AT_PORT_TCP : strncmp(spec, "tcp://", 6) == 0;

    if (tcp)
        snprintf(buf, size,
                 "no answer to AT from %s: check that the device server is connected "
                 "to the modem's AT port, at the modem's baud rate",
                 name);
    else
        snprintf(buf, size,
                 "no answer to AT on %s at %d baud: check that it is the modem's AT "
                 "port (" LIST_PORTS " marks it) and the baud (modem.baud), and that no "
                 "other program uses it (`systemctl stop ModemManager`)",
                 name, baud);
    return buf;
}
