# SPDX-License-Identifier: MIT
# mq.bash: bash completion for the spoolmq commands (mq-send, mq-recv,
# mq-ack, mq-nack, mq-peek, mq-replay, mq-rm, mq-pause, mq-stat, mq-sub,
# mq-relayd, mq-bridge).  `make install` installs it (as mq-send, the other names
# linked to it) where bash-completion looks.
#
# Install: source it from ~/.bashrc, or copy it as mq-send into
# /usr/share/bash-completion/completions/ and link the other names to it
# (or put it in /etc/bash_completion.d/).  It needs bash 4.3 and nothing
# else; bash-completion is not required.
#
# Completes options and their values, queue names (the directories of the
# spool: -d DIR on the line, else $MQ_SPOOL, else /var/spool/mq for root,
# else $XDG_STATE_HOME/mq or ~/.local/state/mq), and message ids from
# mq-peek: claimed ones for mq-ack and mq-nack, dead (or done) ones for
# mq-replay, all for mq-peek and mq-rm; topics from mq-sub ls.

# _mq_words: COMP_WORDS with "--opt" "=" "value" joined back into one word
# (readline splits at '='); sets the arrays words and cword.
_mq_words() {
	local i w first n=${#COMP_WORDS[@]}
	words=()
	cword=0
	for ((i = 0; i < n; i++)); do
		w=${COMP_WORDS[i]}
		if [[ $w == "=" && ${#words[@]} -gt 1 && ${words[-1]} == --* && ${words[-1]} != *=* ]]; then
			first=$((i - 1))
			words[-1]+="="
			# the value, unless it lies beyond the word being completed
			if ((i + 1 < n && i + 1 <= COMP_CWORD)); then
				i=$((i + 1))
				words[-1]+=${COMP_WORDS[i]}
			fi
			((COMP_CWORD >= first && COMP_CWORD <= i)) && cword=$((${#words[@]} - 1))
			continue
		fi
		words+=("$w")
		((i == COMP_CWORD)) && cword=$((${#words[@]} - 1))
	done
	return 0
}

# _mq_spool: the spool root the command on the line would use.
_mq_spool() {
	local i w dir=
	for ((i = 1; i < cword; i++)); do
		w=${words[i]}
		case $w in
		-d) ((i + 1 < cword)) && dir=${words[i + 1]} ;;
		-d?*) dir=${w#-d} ;;
		esac
	done
	[[ $dir == "~"* ]] && dir=$HOME${dir#"~"}
	if [[ -z $dir ]]; then
		if [[ -n ${MQ_SPOOL-} ]]; then
			dir=$MQ_SPOOL
		elif ((EUID == 0)); then
			dir=/var/spool/mq
		elif [[ ${XDG_STATE_HOME-} == /* ]]; then
			dir=$XDG_STATE_HOME/mq
		else
			dir=$HOME/.local/state/mq
		fi
	fi
	printf '%s\n' "$dir"
}

# _mq_add WORD...: add the WORDs that start with $cur to COMPREPLY.
_mq_add() {
	local w
	for w; do
		[[ $w == "$cur"* ]] && COMPREPLY+=("$w")
	done
	return 0
}

# _mq_compgen ACTION: COMPREPLY from compgen -A ACTION (files, directories,
# commands), one per line, shown and quoted as file names.
_mq_compgen() {
	compopt -o filenames 2>/dev/null
	mapfile -t COMPREPLY < <(compgen -A "$1" -- "$cur")
}

# _mq_queues: queue names of the spool.
_mq_queues() {
	local root q
	root=$(_mq_spool)
	[[ -d $root ]] || return 0
	for q in "$root"/*; do
		[[ -d $q ]] || continue
		q=${q##*/}
		[[ ${#q} -le 64 && $q =~ ^[A-Za-z0-9_][A-Za-z0-9._-]*$ ]] && _mq_add "$q"
	done
	return 0
}

# _mq_topics: topic names of the spool (mq-sub ls prints TOPIC QUEUE).
_mq_topics() {
	local root t rest
	root=$(_mq_spool)
	[[ -d $root ]] || return 0
	while read -r t rest; do
		_mq_add "$t"
	done < <(mq-sub -d "$root" ls 2>/dev/null | cut -d" " -f1 | sort -u)
	return 0
}

# _mq_ids QUEUE [STATE...]: ids of QUEUE's messages in STATEs (all if none).
_mq_ids() {
	local q=$1 root s id rest
	local -a sel=()
	shift
	for s; do sel+=(-s "$s"); done
	root=$(_mq_spool)
	[[ -d $root/$q ]] || return 0
	# mq-peek prints STATE ID ...; the id is the second column
	while read -r s id rest; do
		_mq_add "$id"
	done < <(mq-peek -d "$root" "${sel[@]}" "$q" 2>/dev/null)
	return 0
}

# Options of each command: flags, then options that take an argument.
_mq_opts() {
	case $1 in
	mq-send)
		flags="-i -l -h --help --version --strict --no-sync"
		args="-d -H --id --delay --at --ttl --topic" ;;
	mq-recv)
		flags="-c -f -h --help --version"
		args="-d -n -w -x" ;;
	mq-ack)
		flags="-h --help --version"
		args="-d --extend" ;;
	mq-nack)
		flags="-h --help --version"
		args="-d --delay --dead" ;;
	mq-peek)
		flags="-h --help --version --json"
		args="-d -s --topic" ;;
	mq-replay)
		flags="-n -h --help --version --dry-run --all --now"
		args="-d --from --since --until --to" ;;
	mq-rm)
		flags="-f -n -h --help --version --all"
		args="-d -s" ;;
	mq-pause)
		flags="-u -h --help --version"
		args="-d" ;;
	mq-sub)
		flags="-h --help --version"
		args="-d" ;;
	mq-stat)
		flags="-h --help --version --json --repair"
		args="-d" ;;
	mq-relayd)
		flags="-n -s -v -h --help --version"
		args="-c -d -p" ;;
	mq-bridge)
		flags="-D -h --help --version"
		args="-d -n -s -t --creds --token-file" ;;
	esac
}

# _mq_value CMD OPT: complete the value of option OPT (the current word is it).
_mq_value() {
	case $2 in
	-d)
		_mq_compgen directory ;;
	-c | -p)
		_mq_compgen file ;;
	-x)
		_mq_compgen command ;;
	-s)
		_mq_add ready delayed waiting claimed dead 'done' ;;
	--from)
		_mq_add dead 'done' ;;
	--to)
		_mq_queues ;;
	--topic)
		_mq_topics ;;
	--delay | --ttl | --extend | -w)
		[[ -n $cur ]] || _mq_add 30s 5m 1h 1d ;;
	--since | --until)
		[[ -n $cur ]] || _mq_add 1h 1d 7d ;;
	-H)
		[[ -n $cur ]] || _mq_add "Content-Type: " ;;
	esac
	return 0
}

_mq() {
	local cmd=${COMP_WORDS[0]##*/} cur flags args
	local -a words pos
	local cword i w skip='' from=dead
	COMPREPLY=()
	_mq_words
	cur=${words[cword]}
	_mq_opts "$cmd"

	# --opt=value
	if [[ $cur == --*=* ]]; then
		local opt=${cur%%=*}
		cur=${cur#*=}
		[[ " $args " == *" $opt "* ]] && _mq_value "$cmd" "$opt"
		return 0
	fi
	# the value of the option before
	w=${words[cword - 1]}
	if ((cword > 1)) && [[ " $args " == *" $w "* ]]; then
		# not when that word is itself the value of an option before it
		if ! ((cword > 2)) || [[ " $args " != *" ${words[cword - 2]} "* ]]; then
			_mq_value "$cmd" "$w"
			return 0
		fi
	fi

	# the operands before the current word (options may come anywhere)
	for ((i = 1; i < cword; i++)); do
		w=${words[i]}
		if [[ -n $skip ]]; then
			skip=
			[[ ${words[i - 1]} == --from ]] && from=$w
			continue
		fi
		case $w in
		--from=*) from=${w#--from=} ;;
		--*=*) ;;
		--*) [[ " $args " == *" $w "* ]] && skip=1 ;;
		-?*) [[ " $args " == *" ${w:0:2} "* && ${#w} -eq 2 ]] && skip=1 ;;
		*) pos+=("$w") ;;
		esac
	done

	if [[ $cur == -* ]]; then
		# shellcheck disable=SC2086 # lists of words
		_mq_add $flags $args
		return 0
	fi

	case $cmd in
	mq-send)
		if ((${#pos[@]} == 0)); then
			_mq_queues
		else
			_mq_compgen file
		fi ;;
	mq-recv)
		((${#pos[@]} == 0)) && _mq_queues ;;
	mq-ack | mq-nack)
		if ((${#pos[@]} == 0)); then
			_mq_queues
		elif [[ $cur == */* ]]; then
			_mq_compgen file
		else
			_mq_ids "${pos[0]}" claimed
		fi ;;
	mq-peek)
		if ((${#pos[@]} == 0)); then
			_mq_queues
		elif ((${#pos[@]} == 1)); then
			_mq_ids "${pos[0]}"
		fi ;;
	mq-replay)
		if ((${#pos[@]} == 0)); then
			_mq_queues
		else
			_mq_ids "${pos[0]}" "$from"
		fi ;;
	mq-rm)
		if ((${#pos[@]} == 0)); then
			_mq_queues
		else
			_mq_ids "${pos[0]}"
		fi ;;
	mq-pause | mq-stat)
		_mq_queues ;;
	mq-sub)
		case ${#pos[@]} in
		0) _mq_add add rm ls keep refuse ;;
		1) _mq_topics ;;
		*) [[ ${pos[0]} == add || ${pos[0]} == rm ]] && _mq_queues ;;
		esac ;;
	mq-bridge)
		case ${#pos[@]} in
		0) _mq_add out in ;;
		1) [[ ${pos[0]} == out ]] && _mq_queues ;;
		*) [[ ${pos[0]} == in && ${#pos[@]} == 3 ]] && _mq_queues ;;
		esac ;;
	mq-relayd) ;;
	esac
	return 0
}

complete -F _mq mq-send mq-recv mq-ack mq-nack mq-peek mq-replay mq-rm mq-pause mq-stat mq-sub \
	mq-relayd mq-bridge
