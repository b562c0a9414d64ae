# A SecureChange Request Add-on integration as teams wrote them, run unchanged by
# "agent enrich" ([enrich] python = /usr/bin/python3). It finds the add-on's root two
# folders up, reads its settings from integration_config.txt and imports from lib/.
import configparser
import os
import sys

script_path = os.path.abspath(os.path.join(os.path.dirname(os.path.realpath(__file__)), "../.."))
sys.path.append(os.path.join(script_path, "lib"))
import asset_inventory  # noqa: E402  (the add-on's lib/)

config = configparser.ConfigParser()
config.read(os.path.join(script_path, "bin", "integrations", "integration_config.txt"))
TEAM = config.get("AssetOwner", "default_team").strip('"')


def get_data(ticket_info, logger):
    lines = []
    for request in ticket_info["Requests"]:
        for source in request["Sources"]:
            if source.get("Private"):
                owner = asset_inventory.owner_of(source["Ip"]) or TEAM
                lines.append("%s/%s is owned by %s" % (source["Ip"], source["Cidr"], owner))
    logger.info("%d owners found for ticket %s" % (len(lines), ticket_info["Id"]))
    return "\n".join(lines) if lines else None
