"""Simulator assets: download, verify and lay out what ManiSkill reads, so it never prompts.

ManiSkill treats an existing asset folder as complete and asks on stdin when one is missing; this
package installs each folder in one atomic rename and checks readiness before a run starts.
"""
