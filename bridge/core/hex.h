/* Hexadecimal digits, as the module writes PDUs and UCS-2 text. */
#ifndef M2M_CORE_HEX_H
#define M2M_CORE_HEX_H

/* The value of a hex digit (either case), or -1. */
static inline int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

#endif
